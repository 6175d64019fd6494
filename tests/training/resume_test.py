"""florence_mini killed with SIGKILL mid-run and resumed ends with exactly the weights of an uninterrupted run.

The model is florence_mini with DropPath 0.1, trained on the real CSV input pipeline (`florence_mini_run.py`; the
fault-injection test resumes runs that use the gradient cache), and the stages switch prompt-augmented texts off at
step 3, so the resume must restore weights, optimizer moments, the DropPath seed states, the stage and the data
position — the latter without reading any consumed record (the resumed run asks its input pipeline to start at the
checkpointed position).

The runs are subprocesses of this file (`python resume_test.py DATA MODEL_DIR OUT.npz PAUSE_AFTER_STEP`); the run
to kill pauses after a given step (already past its last checkpoint) and is SIGKILLed there.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

TOTAL_STEPS = 6
STAGE_2_STEP = 3  # prompt-augmented texts off from here
KILL_AFTER_STEP = 5  # checkpoints every 2 steps: the resumed run restarts from step 4
GLOBAL_BATCH = 8


def _command(data, model_dir, out, pause_after_step=0):
    return [sys.executable, __file__, str(data), str(model_dir), str(out), str(pause_after_step)]


def _env():
    return {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _launch(command, log):
    """Starts a run; its stderr goes to the file `log` (a pipe could fill up while stdout is read)."""
    log = open(log, "w+", encoding="utf-8")
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=log, text=True)
    process.log = log
    return process


def _stderr(process):
    """The end of a run's stderr, for assertion messages."""
    process.log.seek(0)
    return process.log.read()[-5000:]


def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path):
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from florence_mini_run import write_data

    start = time.perf_counter()
    data = write_data(tmp_path / "data")
    # The uninterrupted reference runs concurrently with the run that gets killed.
    reference = _launch(_command(data, tmp_path / "reference", tmp_path / "reference.npz"), tmp_path / "ref.log")
    victim = _launch(_command(data, tmp_path / "run", tmp_path / "unused.npz", KILL_AFTER_STEP),
                     tmp_path / "victim.log")
    killed = False
    for line in victim.stdout:
        if line.strip() == f"step {KILL_AFTER_STEP}":
            victim.send_signal(signal.SIGKILL)
            killed = True
            break
    victim.wait(timeout=300)
    assert killed, _stderr(victim)
    assert victim.returncode == -signal.SIGKILL, _stderr(victim)
    assert not (tmp_path / "unused.npz").exists()
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))
    assert checkpoints[-1] == "ckpt-4.index", checkpoints

    resumed = subprocess.run(_command(data, tmp_path / "run", tmp_path / "resumed.npz"), env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    lines = resumed.stdout.splitlines()
    assert [int(line.split()[1]) for line in lines if line.startswith("step ")] == [5, 6], resumed.stdout
    # Stage 2 had run one step (8 examples) before the checkpoint: the input pipeline starts after them.
    assert [line for line in lines if line.startswith("request ")] == ["request stage2 start_position=8"], lines
    reference_stdout, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, _stderr(reference)
    assert [line for line in reference_stdout.splitlines() if line.startswith("request ")] == [
        "request stage1 start_position=0", "request stage2 start_position=0"]

    expected = np.load(tmp_path / "reference.npz")
    got = np.load(tmp_path / "resumed.npz")
    assert sorted(expected.files) == sorted(got.files)
    for name in expected.files:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    print(f"florence_mini resume test: {time.perf_counter() - start:.1f} s; max |resumed - reference| = 0 over "
          f"{len(expected.files)} variables")


def main(argv):
    data, model_dir, out, pause_after_step = argv[0], argv[1], argv[2], int(argv[3])
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from florence_mini_run import make_input_fn
    from florence_mini_run import make_trainer
    from florence_mini_run import weights

    from florence_keras.training import AdamWConfig
    from florence_keras.training import florence_stages

    input_fn = make_input_fn(data, "csv")

    def make_dataset(request):
        print(f"request {request.stage.name} start_position={request.start_position}", flush=True)
        return input_fn(request)

    trainer = make_trainer(
        model_dir, make_dataset, total_steps=TOTAL_STEPS, global_batch_size=GLOBAL_BATCH,
        optimizer=AdamWConfig(learning_rate=3e-3, warmup_steps=2),
        stages=florence_stages(TOTAL_STEPS, image_size=32, augmented_texts_off_step=STAGE_2_STEP),
        checkpoint_every=2, deterministic=True, seed=11,
    )
    train_step = trainer._train_step
    completed = [trainer.checkpoint.restore_latest() or 0]

    def reporting_step(iterator, flag):
        out_values = train_step(iterator, flag)
        completed[0] += 1
        print(f"step {completed[0]}", flush=True)
        if completed[0] == pause_after_step:
            time.sleep(600)  # the test SIGKILLs the process here
        return out_values

    trainer._train_step = reporting_step
    trainer.fit()
    np.savez(out, **weights(trainer.model))


if __name__ == "__main__":
    main(sys.argv[1:])
