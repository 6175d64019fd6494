r"""Fault injection for training: SIGKILL / SIGTERM at random points, some inside checkpoint writes.

Each trial trains a small deterministic run of the real model and input pipeline (`florence_mini` at 32 pixels with
DropPath 0.1 and the gradient cache, on 24 built-in scenes written once as CSV and read by the pretraining input
pipeline, with a stage switch; a checkpoint is ~30 MB, so its write takes a while) in a fresh directory, interrupts it
1-3 times, then lets it finish. Checked per trial:

* every resumed run starts (no unusable checkpoint stops it) and the final run completes all steps;
* the final weights equal those of an uninterrupted reference run exactly (max abs diff 0).

Where an interruption lands (`--modes`, drawn at random per interruption):

* `startup`: a random delay after launch (imports, model build, restore);
* `step`: after a random training step (or the first one, for a run resumed past it), plus 0-300 ms;
* `in_write`: as soon as TensorFlow's temporary files of a checkpoint write appear (`ckpt-N_temp/`), i.e. while
  the data files are being written;
* `before_state`: after `ckpt-N.index` exists but before the `checkpoint` state file names it (the run is started
  with `FLORENCE_TEST_CHECKPOINT_SAVE_DELAY=0.5`, a testing hook of `TrainingCheckpoint.save`);
* `in_save`: a random 0-50 ms after the trainer entered `save`.

The signal is SIGKILL or SIGTERM (`--signals`). Usage (nightly):

    python tools/fault_injection.py --trials=30 --report=/tmp/fault_injection.json
    python tools/fault_injection.py --target=recipe --trials=5 --report=/tmp/fault_injection_recipe.json

`--target=recipe` runs the real recipe instead (`recipes/pretrain_unicl.py --tiny --deterministic`: built-in data,
florence_mini, 4 steps, checkpoints at 2 and 4, a preset), interrupted during startup (which includes writing the
built-in data), inside a checkpoint write, or just after one, and compares the presets' weights.

The workers run a copy of `florence_keras` made at the start (`--no_snapshot`: the checkout itself), so edits made
to the checkout during the trials can't make the reference and the trials differ. Exit status 0 when every trial
passed. The tests (tests/training/fault_injection_test.py) run one trial. A worker that fails (exit status other than
0 or the signal sent) puts the end of its stderr in the trial's `error`.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTAL_STEPS = 8
CHECKPOINT_EVERY = 2
STAGE_2_STEP = 5  # prompt-augmented texts off from here
IMAGE_SIZE = 32
NUM_RECORDS = 24
MODES = ("startup", "step", "in_write", "before_state", "in_save")
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
SAVE_DELAY_ENV = "FLORENCE_TEST_CHECKPOINT_SAVE_DELAY"
SOURCE_ENV = "FAULT_INJECTION_SOURCE_ROOT"


# ------------------------------------------------------------------------------------------------------------
# The training run (a subprocess).


def _source_root():
    """Where the worker imports florence_keras from: a snapshot (see `snapshot_sources`) or the checkout."""
    return os.environ.get(SOURCE_ENV) or ROOT


def snapshot_sources(workdir):
    """Copies florence_keras and the recipes into `workdir/src`, so that edits to the checkout made while the trials
    run (other people's work) can't change the numbers between the reference and the trials."""
    import shutil

    target = os.path.join(workdir, "src")
    if os.path.exists(target):
        shutil.rmtree(target)
    for package in ("florence_keras", "recipes"):
        shutil.copytree(os.path.join(ROOT, package), os.path.join(target, package),
                        ignore=shutil.ignore_patterns("__pycache__", "BUILD"))
    return target


def prepare_data(workdir):
    """Writes the trials' training data (built-in scenes as CSV) under `workdir` once; returns the CSV path."""
    path = os.path.join(workdir, "data", "train.csv")
    if not os.path.exists(path):
        from florence_keras.data.builtin_dataset import write_builtin_dataset

        write_builtin_dataset(os.path.join(workdir, "data"), num_train=NUM_RECORDS, num_heldout=0, formats=("csv",),
                              image_size=IMAGE_SIZE, seed=0)
    return path


def worker(model_dir, out, step_sleep, data):
    root = _source_root()
    sys.path.insert(0, root)

    import tensorflow as tf

    from florence_keras.models import preset_registry
    from florence_keras.models.florence_clip import FlorenceCLIP
    from florence_keras.training import AdamWConfig
    from florence_keras.training import UniCLTrainer
    from florence_keras.training import florence_stages
    from florence_keras.training.image_text_input import make_image_text_input_fn

    preprocessor = preset_registry.build_architecture_preprocessor("florence_mini", IMAGE_SIZE)
    trainer = UniCLTrainer(
        lambda: FlorenceCLIP.from_preset("florence_mini", image_size=IMAGE_SIZE,
                                         image_encoder={"drop_path_rate": 0.1}),
        make_image_text_input_fn(data, "csv", preprocessor),
        model_dir=model_dir,
        total_steps=TOTAL_STEPS,
        global_batch_size=8,
        optimizer=AdamWConfig(learning_rate=3e-3, warmup_steps=2),
        chunk_size=4,
        stages=florence_stages(TOTAL_STEPS, image_size=IMAGE_SIZE, augmented_texts_off_step=STAGE_2_STEP),
        checkpoint_every=CHECKPOINT_EVERY,
        log_every=1,
        deterministic=True,
        seed=11,
        verbose=0,
    )
    train_step = trainer._train_step
    save = trainer.checkpoint.save
    print("built", flush=True)

    def reporting_step(iterator, flag):
        values = train_step(iterator, flag)
        print(f"step {int(trainer.optimizer.iterations.numpy())}", flush=True)
        if step_sleep:
            time.sleep(step_sleep)
        return values

    def reporting_save(step, *args, **kwargs):
        print(f"save-begin {step}", flush=True)
        path = save(step, *args, **kwargs)
        print(f"save-end {step}", flush=True)
        return path

    trainer._train_step = reporting_step
    trainer.checkpoint.save = reporting_save
    result = trainer.fit()
    print(f"result step={result['step']} preempted={result['preempted']}", flush=True)
    if result["step"] == TOTAL_STEPS and not result["preempted"]:
        weights = {f"{i}:{v.path}": tf.convert_to_tensor(v).numpy() for i, v in enumerate(trainer.model.variables)}
        np.savez(out, **weights)


def _env(extra=None):
    env = {**os.environ, "PYTHONPATH": _source_root(), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop(SAVE_DELAY_ENV, None)
    env.update(extra or {})
    return env


def _launch(model_dir, out, step_sleep, data, extra_env=None):
    command = [sys.executable, os.path.abspath(__file__), "--worker", str(model_dir), str(out), str(step_sleep),
               str(data)]
    os.makedirs(model_dir, exist_ok=True)
    stderr = open(os.path.join(model_dir, f"stderr_{time.time_ns()}.log"), "w+", encoding="utf-8")  # no pipe stall
    process = subprocess.Popen(command, env=_env(extra_env), stdout=subprocess.PIPE, stderr=stderr, text=True,
                               bufsize=1)
    process.stderr_file = stderr
    return process


def _finish(process, timeout=600):
    stdout, _ = process.communicate(timeout=timeout)
    process.stderr_file.seek(0)
    stderr = process.stderr_file.read()
    process.stderr_file.close()
    return process.returncode, stdout, stderr


def run_to_completion(model_dir, out, data, step_sleep=0.0, timeout=600):
    """Runs the worker uninterrupted; returns (returncode, stdout, stderr)."""
    return _finish(_launch(model_dir, out, step_sleep, data), timeout)


# ------------------------------------------------------------------------------------------------------------
# One interruption.


def _checkpoint_state(model_dir):
    directory = os.path.join(model_dir, "checkpoints")
    if not os.path.isdir(directory):
        return {"files": [], "temp": False}
    names = sorted(os.listdir(directory))
    return {"files": names, "temp": any(name.endswith("_temp") or "_temp" in name for name in names)}


def interrupt_once(model_dir, out, data, rng, modes, signals, step_sleep, plan=None):
    """Launches the worker and interrupts it as drawn (or as `plan` = (mode, signal name) says); returns a dict
    describing what happened."""
    mode, signal_name = plan if plan is not None else (rng.choice(modes), rng.choice(signals))
    target_save = rng.choice(range(CHECKPOINT_EVERY, TOTAL_STEPS + 1, CHECKPOINT_EVERY))
    extra_env = {SAVE_DELAY_ENV: "0.5"} if mode == "before_state" else None
    process = _launch(model_dir, out, step_sleep, data, extra_env)
    event = {"mode": mode, "signal": signal_name, "landed": None}
    checkpoints = os.path.join(model_dir, "checkpoints")
    started = time.perf_counter()
    lines = []
    if mode == "startup":
        delay = rng.uniform(0.0, 8.0)
        event["delay_s"] = round(delay, 3)
        deadline = started + delay
        while time.perf_counter() < deadline and process.poll() is None:
            time.sleep(0.01)
        event["landed"] = "startup"
    else:
        target_step = rng.randint(1, TOTAL_STEPS)
        event["target"] = target_save if mode in ("in_write", "before_state", "in_save") else target_step
        for line in process.stdout:
            line = line.strip()
            lines.append(line)
            # A run resumed past the target step is interrupted after its first step instead.
            if mode == "step" and line.startswith("step ") and int(line.split()[1]) >= target_step:
                delay = rng.uniform(0.0, 0.3)
                event["delay_s"] = round(delay, 3)
                time.sleep(delay)
                event["landed"] = f"after step {line.split()[1]} + {delay * 1000:.0f} ms"
                break
            if line.startswith("save-begin "):
                step = int(line.split()[1])
                if step < target_save:
                    continue
                if mode == "in_save":
                    delay = rng.uniform(0.0, 0.05)
                    time.sleep(delay)
                    event["delay_s"] = round(delay, 4)
                    event["landed"] = f"save {step} + {delay * 1000:.0f} ms"
                    break
                # Poll for the files of this write.
                temp = os.path.join(checkpoints, f"ckpt-{step}_temp")
                index = os.path.join(checkpoints, f"ckpt-{step}.index")
                poll_deadline = time.perf_counter() + 10
                while time.perf_counter() < poll_deadline and process.poll() is None:
                    if mode == "in_write" and os.path.exists(temp):
                        event["landed"] = f"inside write of ckpt-{step} (temp files present)"
                        break
                    if mode == "before_state" and os.path.exists(index):
                        event["landed"] = f"ckpt-{step} written, state file not yet updated"
                        break
                    time.sleep(0.0005)
                else:
                    event["landed"] = f"save {step}: files not seen in time"
                break
            if line.startswith("result "):
                event["landed"] = "after the run finished training (saving its weights, exiting)"
                break
        else:
            event["landed"] = event["landed"] or "output ended"
    if process.poll() is None:
        process.send_signal(SIGNALS[signal_name])
        event["state_at_signal"] = _checkpoint_state(model_dir)
    else:
        event["landed"] = "process had already exited"
    returncode, stdout, stderr = _finish(process)
    lines += stdout.splitlines()
    event["returncode"] = returncode
    event["steps_seen"] = [int(line.split()[1]) for line in lines if line.startswith("step ")]
    event["seconds"] = round(time.perf_counter() - started, 2)
    if returncode not in (0, -signal.SIGKILL, -signal.SIGTERM):
        event["error"] = stderr[-2000:]
    event["preempted"] = "preempted=True" in stdout
    return event


def run_trial(trial_dir, reference_npz, data, rng, modes=MODES, signals=tuple(SIGNALS), step_sleep=0.05,
              max_interruptions=3, plans=None):
    """One trial: 1..max_interruptions interrupted runs (or one per entry of `plans`, (mode, signal name) pairs),
    then a final run; compares its weights with the reference (`reference_npz`: a path, or a callable returning
    one)."""
    model_dir = os.path.join(trial_dir, "run")
    out = os.path.join(trial_dir, "final.npz")
    started = time.perf_counter()
    events = []
    if plans is None:
        plans = [None] * rng.randint(1, max_interruptions)
    for plan in plans:
        events.append(interrupt_once(model_dir, out, data, rng, modes, signals, step_sleep, plan))
    returncode, stdout, stderr = run_to_completion(model_dir, out, data, step_sleep)
    trial = {"events": events, "final_returncode": returncode, "seconds": None,
             "fallback_warnings": stderr.count("can't be restored"),
             "removed_partial_writes": stderr.count("left by an interrupted checkpoint write")}
    trial["resumed_from"] = None
    steps = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("step ")]
    trial["final_run_steps"] = [steps[0], steps[-1]] if steps else []
    errors = [event["error"] for event in events if "error" in event]
    if returncode != 0 or not os.path.exists(out):
        trial["passed"] = False
        trial["error"] = stderr[-3000:]
    elif errors:
        trial["passed"] = False
        trial["error"] = errors[0]
    else:
        expected, got = np.load(reference_npz() if callable(reference_npz) else reference_npz), np.load(out)
        if sorted(expected.files) != sorted(got.files):
            trial["passed"], trial["error"] = False, "different variables"
        else:
            diff = max(float(np.max(np.abs(got[k].astype(np.float64) - expected[k].astype(np.float64))))
                       if got[k].size else 0.0 for k in expected.files)
            trial["max_abs_diff"] = diff
            trial["passed"] = diff == 0.0
    trial["seconds"] = round(time.perf_counter() - started, 1)
    return trial


# ------------------------------------------------------------------------------------------------------------
# The real recipe (`--target=recipe`): recipes/pretrain_unicl.py --tiny --deterministic (built-in data written,
# florence_mini trained 4 steps with checkpoints every 2, a preset written); fewer, slower trials.

RECIPE_MODES = ("startup", "in_write", "after_checkpoint")


def _recipe_launch(model_dir):
    command = [sys.executable, os.path.join(_source_root(), "recipes", "pretrain_unicl.py"), "--tiny",
               "--deterministic", "--evaluate=false", f"--model_dir={model_dir}"]
    os.makedirs(model_dir, exist_ok=True)
    stderr = open(os.path.join(model_dir, f"stderr_{time.time_ns()}.log"), "w+", encoding="utf-8")
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
    process.stderr_file = stderr
    return process


def _preset_weights(model_dir):
    import h5py

    weights = {}
    with h5py.File(os.path.join(model_dir, "preset", "model.weights.h5"), "r") as f:
        f.visititems(lambda name, item: weights.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset)
                     else None)
    return weights


def _max_diff(expected, got):
    if sorted(expected) != sorted(got):
        return None
    return max((float(np.max(np.abs(np.asarray(got[k], np.float64) - np.asarray(expected[k], np.float64))))
                if np.size(expected[k]) else 0.0) for k in expected)


def recipe_trial(trial_dir, reference_dir, rng, signals=tuple(SIGNALS), max_interruptions=2):
    model_dir = os.path.join(trial_dir, "run")
    checkpoints = os.path.join(model_dir, "checkpoints")
    started = time.perf_counter()
    events = []
    for _ in range(rng.randint(1, max_interruptions)):
        mode, signal_name = rng.choice(RECIPE_MODES), rng.choice(signals)
        process = _recipe_launch(model_dir)
        event = {"mode": mode, "signal": signal_name}
        launched = time.perf_counter()
        if mode == "startup":
            delay = rng.uniform(0.0, 25.0)
            while time.perf_counter() - launched < delay and process.poll() is None:
                time.sleep(0.01)
            event["landed"] = f"{delay:.1f} s after launch"
        else:
            step = rng.choice((2, 4))
            temp = os.path.join(checkpoints, f"ckpt-{step}_temp")
            index = os.path.join(checkpoints, f"ckpt-{step}.index")
            while process.poll() is None and time.perf_counter() - launched < 300:
                if mode == "in_write" and os.path.exists(temp):
                    event["landed"] = f"inside write of ckpt-{step}"
                    break
                if mode == "after_checkpoint" and os.path.exists(index):
                    time.sleep(rng.uniform(0.0, 0.2))
                    event["landed"] = f"0-200 ms after ckpt-{step}.index appeared"
                    break
                time.sleep(0.0005)
        if process.poll() is None:
            process.send_signal(SIGNALS[signal_name])
        else:
            event["landed"] = "process had already exited"
        returncode, _, stderr = _finish(process)
        event["returncode"] = returncode
        if returncode not in (0, -signal.SIGKILL, -signal.SIGTERM):
            event["error"] = stderr[-2000:]
        events.append(event)
    final = _recipe_launch(model_dir)
    returncode, stdout, stderr = _finish(final, timeout=600)
    trial = {"target": "recipe", "events": events, "final_returncode": returncode,
             "fallback_warnings": stderr.count("can't be restored"),
             "removed_partial_writes": stderr.count("left by an interrupted checkpoint write")}
    trial["final_run_steps"] = []
    errors = [event["error"] for event in events if "error" in event]
    if returncode != 0 or errors:
        trial["passed"], trial["error"] = False, (errors[0] if errors else stderr[-3000:])
    else:
        diff = _max_diff(_preset_weights(reference_dir), _preset_weights(model_dir))
        trial["max_abs_diff"] = diff
        trial["passed"] = diff == 0.0
    trial["seconds"] = round(time.perf_counter() - started, 1)
    return trial


def make_reference(workdir, data, step_sleep=0.0):
    reference = os.path.join(workdir, "reference.npz")
    returncode, _, stderr = run_to_completion(os.path.join(workdir, "reference"), reference, data, step_sleep)
    if returncode != 0:
        raise RuntimeError(f"The uninterrupted reference run failed:\n{stderr[-3000:]}")
    return reference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="default: a fresh temporary directory")
    parser.add_argument("--report", default=None, help="write the trials as JSON here")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--signals", default="SIGKILL,SIGTERM")
    parser.add_argument("--step_sleep", type=float, default=0.05, help="seconds the worker sleeps after a step")
    parser.add_argument("--time_limit", type=float, default=None, help="stop starting trials after this many s")
    parser.add_argument("--target", default="trainer", choices=("trainer", "recipe"),
                        help="trainer: florence_mini on the CSV pipeline driven by UniCLTrainer directly (hooks "
                             "report steps and saves, so interruptions land precisely; many trials); recipe: "
                             "recipes/pretrain_unicl.py --tiny --deterministic (the whole recipe and its preset; "
                             "slow)")
    parser.add_argument("--no_snapshot", action="store_true",
                        help="run the checkout's code as it is at each launch instead of a copy made at the start")
    args = parser.parse_args(argv)
    import tempfile

    workdir = args.workdir or tempfile.mkdtemp(prefix="fault_injection_")
    os.makedirs(workdir, exist_ok=True)
    if not args.no_snapshot:
        os.environ[SOURCE_ENV] = snapshot_sources(workdir)
        print(f"running a snapshot of the sources: {os.environ[SOURCE_ENV]}", flush=True)
    rng = random.Random(args.seed)
    modes = tuple(args.modes.split(","))
    signals = tuple(args.signals.split(","))
    started = time.perf_counter()
    if args.target == "recipe":
        reference = os.path.join(workdir, "reference")
        returncode, _, stderr = _finish(_recipe_launch(reference), timeout=600)
        if returncode != 0:
            raise RuntimeError(f"The uninterrupted reference run failed:\n{stderr[-3000:]}")
    else:
        data = prepare_data(workdir)
        reference = make_reference(workdir, data)
    print(f"reference run: {time.perf_counter() - started:.1f} s", flush=True)
    trials = []
    for index in range(args.trials):
        if args.time_limit and time.perf_counter() - started > args.time_limit:
            print(f"time limit reached after {index} trials", flush=True)
            break
        trial_dir = os.path.join(workdir, f"trial_{index:03d}")
        if args.target == "recipe":
            trial = recipe_trial(trial_dir, reference, rng, signals)
        else:
            trial = run_trial(trial_dir, reference, data, rng, modes, signals, args.step_sleep)
        trial["index"] = index
        trials.append(trial)
        summary = "; ".join(f"{e['signal']} {e['landed']} -> rc {e['returncode']}" for e in trial["events"])
        print(f"trial {index}: {'PASS' if trial['passed'] else 'FAIL'} ({trial['seconds']} s) "
              f"final steps {trial['final_run_steps']} max|diff|={trial.get('max_abs_diff')} "
              f"fallbacks={trial['fallback_warnings']} | {summary}", flush=True)
        if args.report:
            _write_report(args.report, trials, args, time.perf_counter() - started)
    passed = sum(trial["passed"] for trial in trials)
    print(f"{passed}/{len(trials)} trials passed in {time.perf_counter() - started:.0f} s", flush=True)
    if args.report:
        _write_report(args.report, trials, args, time.perf_counter() - started)
    return 0 if trials and passed == len(trials) else 1


def _write_report(path, trials, args, seconds):
    counts = {}
    for trial in trials:
        for event in trial["events"]:
            key = f"{event['signal']} {event['mode']}"
            counts[key] = counts.get(key, 0) + 1
    report = {"trials": len(trials), "passed": sum(t["passed"] for t in trials), "seconds": round(seconds, 1),
              "interruptions": sum(len(t["events"]) for t in trials), "interruptions_by_kind": counts,
              "seed": args.seed, "details": trials}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(main())
