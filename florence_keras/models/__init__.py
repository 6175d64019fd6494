"""Florence models: CoSwin, the text encoder, the dual encoder and its task."""
