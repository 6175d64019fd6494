"""Procedural scenes: objects with class, colour, size, position, depth; rendered image, depth map, boxes,
captions and question-answer pairs; and short clips of moving objects. Built by `SceneGenerator`.

Rendering is a painter's algorithm over flat sprites, far to near, so occlusion always agrees with depth order:
a pixel shows the nearest object covering it, and the depth map holds that object's depth (background: a receding
floor-and-wall plane). Boxes are the tight COCO `[x, y, width, height]` boxes of each object's *visible* pixels.
"""

import dataclasses
import functools

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 85, 225),
    "yellow": (235, 215, 45),
    "purple": (145, 60, 200),
    "orange": (245, 140, 30),
    "cyan": (40, 205, 215),
    "pink": (245, 135, 195),
}
# Another palette [ours], to check that what the defaults learn is not tuned to the default one: eight other colour
# names, each one token of the CLIP vocabulary, with other RGB values. Its closest pair (brown, maroon) is ~86 apart in
# RGB, the default's (yellow, orange) ~77; every colour stays >= ~84 from the backdrop's greys (levels 20-145).
ALT_COLOURS = {
    "white": (240, 240, 235),
    "brown": (165, 100, 40),
    "lime": (165, 235, 50),
    "teal": (15, 135, 125),
    "navy": (25, 40, 140),
    "maroon": (135, 20, 50),
    "magenta": (225, 35, 215),
    "gold": (250, 190, 20),
}
# Named palettes of `SceneGenerator(palette=...)`: colour name -> RGB.
PALETTES = {"default": COLOURS, "alt": ALT_COLOURS}
SIZES = ("small", "medium", "large")
# Radius ranges as a fraction of the image side, per size word. The smallest radius is chosen so that every shape is
# identifiable at the default 64 pixels [ours]: a small hexagon's corners stand only r (1 - cos 30°) = 0.13 r out of
# its inscribed circle, and at the old smallest radius (0.10: 6.4 px) a hexagon's mask and a circle's mask with the
# same bounding box differed by as few as 5 pixels; a supervised encoder then confused small circles and hexagons
# (small objects 0.92, medium 0.99, large 1.0: docs/training_science.md). From radius 0.135 (8.6 px) every two
# shapes' masks differ by >= 15 pixels (tests/data/scene_generator_test.py), as medium objects did before. The ranges
# keep the old ratios between sizes (a gap of ~12% between one size's largest and the next one's smallest radius).
SIZE_RADII = {"small": (0.135, 0.16), "medium": (0.18, 0.21), "large": (0.235, 0.27)}
# Metres: objects stand between the near and far planes; the background is farther.
NEAR_DEPTH, FAR_DEPTH, BACKGROUND_NEAR, BACKGROUND_FAR = 1.0, 6.0, 7.0, 12.0
# 16-bit depth PNGs store millimetres.
DEPTH_PNG_SCALE = 1000.0
# "Is the X in front of the Y?" is asked only when the image shows the answer. On the flat layout depth is not drawn
# at all, so only occlusion tells the order: the nearer object must hide at least this fraction of the farther one's
# full mask (at the smallest size at 64 px: 6 of a triangle's 119 pixels, 12 of a circle's 237) [ours].
# Before session 11 it was asked of every pair, and a third of the held-out pairs did not overlap at all: those
# answers were coin flips for any model. The ground-plane layout shows depth by size and row, so it always asks.
MIN_OCCLUDED_FRACTION = 0.05
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclasses.dataclass
class SceneObject:
    """One object of a scene.

    Attributes:
        shape: class name, one of `SHAPES`.
        colour: colour name, one of `COLOURS`.
        size: size word, one of `SIZES`.
        radius: float, pixels.
        center: `(x, y)` floats, pixels.
        angle: float, rotation in degrees.
        depth: float, metres from the camera.
        rgb: `(r, g, b)` ints, the drawn colour (the named colour with a small jitter).
        box: `[x, y, w, h]` floats of the visible pixels (set when rendered).
        area: int, visible pixels (set when rendered).
    """

    shape: str
    colour: str
    size: str
    radius: float
    center: tuple
    angle: float
    depth: float
    rgb: tuple
    box: tuple = None
    area: int = 0

    @property
    def name(self):
        """`"red circle"`."""
        return f"{self.colour} {self.shape}"


def shape_mask(shape, center, radius, angle, image_size):
    """Binary mask of one shape (uint8 0/1, `[S, S]`), drawn with cv2 without anti-aliasing.

    Args:
        shape: one of `SHAPES`.
        center: `(x, y)` pixels.
        radius: float pixels (circumradius).
        angle: rotation in degrees.
        image_size: int S.

    Returns:
        uint8 `[S, S]`.
    """
    mask = np.zeros((image_size, image_size), np.uint8)
    cx, cy = center
    shift = 4  # sub-pixel precision for cv2
    scale = 1 << shift

    def polygon(points):
        theta = np.deg2rad(angle)
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        points = np.asarray(points, np.float64) @ rotation.T + (cx, cy)
        cv2.fillPoly(mask, [np.round(points * scale).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=shift)

    def regular(sides, start):
        steps = np.deg2rad(start) + 2 * np.pi * np.arange(sides) / sides
        return np.stack([np.cos(steps), np.sin(steps)], -1) * radius

    center_int = (int(round(cx * scale)), int(round(cy * scale)))
    if shape == "circle":
        cv2.circle(mask, center_int, int(round(radius * scale)), 1, -1, cv2.LINE_8, shift)
    elif shape == "ring":
        cv2.circle(mask, center_int, int(round(radius * scale)), 1, -1, cv2.LINE_8, shift)
        cv2.circle(mask, center_int, int(round(0.55 * radius * scale)), 0, -1, cv2.LINE_8, shift)
    elif shape == "square":
        polygon(regular(4, 45))
    elif shape == "diamond":
        polygon(regular(4, 0) * (0.75, 1.0))
    elif shape == "triangle":
        polygon(regular(3, -90))
    elif shape == "hexagon":
        polygon(regular(6, 0))
    elif shape == "star":
        steps = np.deg2rad(-90) + np.pi * np.arange(10) / 5
        lengths = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
        polygon(np.stack([np.cos(steps), np.sin(steps)], -1) * lengths[:, None])
    elif shape == "cross":
        arm = 0.36 * radius
        polygon([(-radius, -arm), (radius, -arm), (radius, arm), (-radius, arm)])
        polygon([(-arm, -radius), (arm, -radius), (arm, radius), (-arm, radius)])
    else:
        raise ValueError(f"Unknown shape. Expected one of {SHAPES}. Received: shape={shape!r}")
    return mask


@dataclasses.dataclass
class Background:
    """A scene's background: a grey level, a vertical gradient and the seed of its pixel noise; `ground`: None (the
    default flat backdrop) or a `ground_plane.GroundPlane` (a floor and a wall seen by a camera above the floor)."""

    level: float
    gradient: float
    tint: tuple
    noise_seed: int
    ground: object = None


def visible_masks(objects, image_size):
    """Visible and full masks of objects drawn far to near (occlusion by depth).

    Args:
        objects: list of `SceneObject`.
        image_size: int S.

    Returns:
        `(visible, full)`: two lists of bool `[S, S]` masks in the order of `objects`.
    """
    owner = np.full((image_size, image_size), -1, np.int32)
    full = [shape_mask(obj.shape, obj.center, obj.radius, obj.angle, image_size).astype(bool) for obj in objects]
    for index in sorted(range(len(objects)), key=lambda i: -objects[i].depth):
        owner[full[index]] = index
    return [owner == index for index in range(len(objects))], full


# Channels of `dense_label_map` [ours]: per pixel, the occlusion code (`DENSE_BACKGROUND`, `DENSE_IN_FULL_VIEW`,
# `DENSE_PARTLY_HIDDEN`), the visible object's shape index + 1 and its colour index + 1 (0: background).
DENSE_BACKGROUND, DENSE_IN_FULL_VIEW, DENSE_PARTLY_HIDDEN = 0, 1, 2
DENSE_OCCLUSION_CLASSES = 3


def dense_label_map(objects, image_size, shapes, colours, min_fraction=MIN_OCCLUDED_FRACTION):
    """What is where, per pixel: uint8 `[S, S, 3]` (occlusion code, shape index + 1, colour index + 1).

    A pixel of a visible object is `DENSE_PARTLY_HIDDEN` when a nearer object hides at least `min_fraction` of
    that object's full mask (the threshold "in front" questions use), else `DENSE_IN_FULL_VIEW`; background
    pixels are 0 in all three channels.

    Args:
        objects: list of `SceneObject`.
        image_size: int S.
        shapes: the shape names, in index order (a generator's `shapes`).
        colours: the colour names, in index order (a generator's `colours`).
        min_fraction: float in (0, 1], the hidden share that makes an object "partly hidden".

    Returns:
        uint8 `[S, S, 3]`.
    """
    shapes, colours = list(shapes), list(colours)
    labels = np.zeros((image_size, image_size, 3), np.uint8)
    visible, full = visible_masks(objects, image_size)
    for obj, seen, hidden in zip(objects, visible, partly_hidden(objects, image_size, min_fraction, (visible, full))):
        labels[seen] = (DENSE_PARTLY_HIDDEN if hidden else DENSE_IN_FULL_VIEW, shapes.index(obj.shape) + 1,
                        colours.index(obj.colour) + 1)
    return labels


def partly_hidden(objects, image_size, min_fraction=MIN_OCCLUDED_FRACTION, masks=None):
    """Per object, whether nearer objects hide at least `min_fraction` of its full mask (`dense_label_map`'s
    occlusion code; the threshold the "in front" questions use for one pair, `occlusion_visible`).

    Args:
        objects: list of `SceneObject`; image_size: int S; min_fraction: float in (0, 1].
        masks: `visible_masks(objects, image_size)` where the caller has them already (else computed).

    Returns:
        list of bool, in the order of `objects`.
    """
    visible, full = masks if masks is not None else visible_masks(objects, image_size)
    return [bool(seen.sum() < (1.0 - min_fraction) * whole.sum()) for seen, whole in zip(visible, full)]


def render(objects, background, image_size):
    """Renders objects far to near over the background.

    Args:
        objects: list of `SceneObject` (their `box` and `area` are set here).
        background: `Background`.
        image_size: int S.

    Returns:
        `(image, depth, masks)`: uint8 `[S, S, 3]` RGB, float32 `[S, S]` metres, list of bool `[S, S]` visible
        masks in the order of `objects`.
    """
    size = image_size
    rows = np.linspace(0.0, 1.0, size, dtype=np.float32)
    noise_rng = np.random.default_rng(background.noise_seed)
    if background.ground is not None:
        image, depth = background.ground.render(background, noise_rng, size)
    else:
        base = background.level + background.gradient * (rows - 0.5)
        image = base[:, None, None] + np.asarray(background.tint, np.float32) + np.zeros((1, size, 3), np.float32)
        image += 5.0 * noise_rng.standard_normal((size, size, 3), dtype=np.float32)
        depth = np.repeat((BACKGROUND_FAR - (BACKGROUND_FAR - BACKGROUND_NEAR) * rows)[:, None], size, axis=1)
    masks, _ = visible_masks(objects, size)
    shade = 1.0 - 0.12 * (rows - 0.5)  # lit from above
    for obj, mask in zip(objects, masks):
        ys, xs = np.nonzero(mask)
        obj.area = int(ys.size)
        noise = 3.0 * noise_rng.standard_normal((ys.size, 3), dtype=np.float32)
        image[ys, xs] = np.asarray(obj.rgb, np.float32) * shade[ys, None] + noise
        depth[ys, xs] = obj.depth
        if obj.area:
            obj.box = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
        else:
            obj.box = (0.0, 0.0, 0.0, 0.0)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), depth, masks


def occlusion_visible(near, far, image_size, min_fraction=MIN_OCCLUDED_FRACTION):
    """Whether `near` hides at least `min_fraction` of `far`'s full mask (so the image shows which is in front).

    Args:
        near, far: `SceneObject`s, `near` the one drawn on top.
        image_size: int S.
        min_fraction: float in (0, 1]. Defaults to `MIN_OCCLUDED_FRACTION`.

    Returns:
        bool.
    """
    near_mask = shape_mask(near.shape, near.center, near.radius, near.angle, image_size).astype(bool)
    far_mask = shape_mask(far.shape, far.center, far.radius, far.angle, image_size).astype(bool)
    return bool((near_mask & far_mask).sum() >= min_fraction * max(int(far_mask.sum()), 1))


def article(word):
    """`"an"` before a vowel sound, else `"a"`."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def horizontal_place(obj, image_size):
    """`"left"`, `"middle"` or `"right"`: the third of the image holding the object's center."""
    third = obj.center[0] / image_size * 3.0
    return "left" if third < 1.0 else "right" if third >= 2.0 else "middle"


def relation(first, second):
    """Spatial relation of `first` to `second` along the axis where their centers differ most."""
    dx = first.center[0] - second.center[0]
    dy = first.center[1] - second.center[1]
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


# Caption styles (`Scene.captions`): "short" names the primary object ("a red circle"), "class" its shape alone
# ("a circle"), "colour" its colour alone ("a red object"), "photo" adds size and place ("a photo of a small red
# circle on the left"), "count" the number of objects and a relation, "depth" the occlusion order, and "objects"
# every object, nearest first ("a red circle, a blue star and a green cross").
CAPTION_STYLES = ("short", "class", "photo", "count", "depth", "colour", "objects")


@dataclasses.dataclass
class Scene:
    """A generated scene. `objects[0]` is the primary object (the nearest; it names the ImageFolder class).

    Attributes:
        index: int, the scene's index in its split.
        split: str, `"train"` or `"heldout"`.
        image_size: int S.
        objects: list of `SceneObject` (each at least partly visible).
        background: `Background`.
        caption_style: which of `CAPTION_STYLES` `caption` uses.
        seed: int, seeds the scene's questions.
        shapes: the shapes its generator draws from (the absent shapes its questions ask about); default `SHAPES`.
    """

    index: int
    split: str
    image_size: int
    objects: list
    background: Background
    caption_style: str
    seed: int
    shapes: tuple = SHAPES

    @functools.cached_property
    def _rendered(self):
        return render(self.objects, self.background, self.image_size)

    @property
    def image(self):
        """uint8 `[S, S, 3]` RGB."""
        return self._rendered[0]

    @property
    def depth(self):
        """float32 `[S, S]` depth in metres."""
        return self._rendered[1]

    @property
    def masks(self):
        """list of bool `[S, S]` visible masks, one per object."""
        return self._rendered[2]

    def depth_png16(self):
        """uint16 `[S, S]` depth in millimetres, for a 16-bit PNG."""
        return np.round(self.depth * DEPTH_PNG_SCALE).astype(np.uint16)

    @property
    def boxes(self):
        """float32 `[N, 4]` COCO `[x, y, w, h]` boxes of the visible pixels."""
        _ = self._rendered
        return np.array([obj.box for obj in self.objects], np.float32).reshape(-1, 4)

    @property
    def classes(self):
        """list of the objects' class (shape) names."""
        return [obj.shape for obj in self.objects]

    @property
    def primary(self):
        """The primary `SceneObject`."""
        return self.objects[0]

    @property
    def captions(self):
        """dict style -> caption, for every style in `CAPTION_STYLES`."""
        primary = self.primary
        size = self.image_size
        place = horizontal_place(primary, size)
        where = " in the middle" if place == "middle" else f" on the {place}"
        a_primary = f"{article(primary.name)} {primary.name}"
        names = [f"{article(obj.name)} {obj.name}" for obj in self.objects]
        captions = {
            "short": a_primary,
            "class": f"{article(primary.shape)} {primary.shape}",
            "photo": f"a photo of a {primary.size} {primary.name}{where}",
            "colour": f"{article(primary.colour)} {primary.colour} object",
            "objects": names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1],
        }
        if len(self.objects) >= 2:
            other = self.objects[1]
            a_other = f"{article(other.name)} {other.name}"
            count = NUMBER_WORDS[len(self.objects)]
            captions["count"] = f"{count} objects: {a_primary} {relation(primary, other)} {a_other}"
            captions["depth"] = f"{a_primary} in front of {a_other}"
        else:
            captions["count"] = f"one object: {a_primary}"
            captions["depth"] = a_primary
        return captions

    @property
    def caption(self):
        """The scene's caption, in its `caption_style`."""
        return self.captions[self.caption_style]

    def depth_visible(self, a, b):
        """Whether the image shows which of objects `a` and `b` (indices) is nearer: always on the ground-plane
        layout (size and row give depth), else only through occlusion (`occlusion_visible`)."""
        if self.background.ground is not None:
            return True
        near, far = sorted((self.objects[a], self.objects[b]), key=lambda obj: obj.depth)
        return occlusion_visible(near, far, self.image_size)

    def questions(self):
        """VQA question-answer pairs about the scene (deterministic).

        Every question is answerable from the image: "is the X in front of the Y?" only where `depth_visible`.

        Returns:
            list of dicts with `question`, `answer`, `answer_type` (`"yes/no"`, `"number"`, `"other"`) and
            `question_type`.
        """
        rng = np.random.default_rng([self.seed, 7])
        objects = self.objects
        shapes = [obj.shape for obj in objects]
        colours = [obj.colour for obj in objects]
        qa = [("how many objects are there?", str(len(objects)), "number", "how many")]
        for obj in objects:
            if shapes.count(obj.shape) == 1:
                qa.append((f"what colour is the {obj.shape}?", obj.colour, "other", "what color is the"))
            if colours.count(obj.colour) == 1:
                qa.append((f"what shape is the {obj.colour} object?", obj.shape, "other", "what is the"))
        present = shapes[int(rng.integers(len(shapes)))]
        absent = [shape for shape in self.shapes if shape not in shapes]
        qa.append((f"is there {article(present)} {present}?", "yes", "yes/no", "is there a"))
        if absent:
            missing = absent[int(rng.integers(len(absent)))]
            qa.append((f"is there {article(missing)} {missing}?", "no", "yes/no", "is there a"))
        if len(objects) >= 2 and len(set(obj.name for obj in objects[:2])) == 2 and self.depth_visible(0, 1):
            first, second = (objects[0], objects[1]) if rng.random() < 0.5 else (objects[1], objects[0])
            answer = "yes" if first.depth < second.depth else "no"
            qa.append((f"is the {first.name} in front of the {second.name}?", answer, "yes/no", "is the"))
        if [obj.name for obj in objects].count(self.primary.name) == 1:
            qa.append((f"which side is the {self.primary.name} on?", horizontal_place(self.primary, self.image_size),
                       "other", "which"))
        return [
            {"question": q, "answer": a, "answer_type": t, "question_type": qt} for q, a, t, qt in qa
        ]


@dataclasses.dataclass
class Clip:
    """A short clip: the scene's objects moving with constant velocities (bouncing off the borders).

    Attributes:
        scene: the `Scene` at frame 0.
        velocities: float32 `[N, 2]` initial velocities, pixels per frame, per object.
        frames: uint8 `[T, S, S, 3]`.
        depths: float32 `[T, S, S]`.
        boxes: list of T float32 `[N, 4]` visible boxes.
        label: the primary object's motion, `"moving left"` / `right` / `up` / `down` (it never bounces).
        caption: e.g. `"a red circle moving left"`.
    """

    scene: Scene
    velocities: np.ndarray
    frames: np.ndarray
    depths: np.ndarray
    boxes: list
    label: str
    caption: str
