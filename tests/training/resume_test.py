"""A deterministic run killed with SIGKILL mid-way and resumed ends with the same weights as an uninterrupted one.

The runs are subprocesses of this file (`python resume_test.py MODEL_DIR OUT.npz PAUSE_AFTER_STEP`); the
run to kill pauses after a given step (already past its last checkpoint) and is SIGKILLed there.
The toy model has dropout, the gradient cache is on and the stages switch the data at steps 3 and 6,
so the resume must restore weights, optimizer moments, the dropout seed state, the stage and the data
position.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

TOTAL_STEPS = 8
KILL_AFTER_STEP = 5  # checkpoints every 2 steps: the resumed run restarts from step 4


def _command(model_dir, out, pause_after_step=0):
    return [sys.executable, __file__, str(model_dir), str(out), str(pause_after_step)]


def _env():
    return {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path):
    start = time.perf_counter()
    # The uninterrupted reference runs concurrently with the run that gets killed.
    reference = subprocess.Popen(
        _command(tmp_path / "reference", tmp_path / "reference.npz"), env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    victim = subprocess.Popen(
        _command(tmp_path / "run", tmp_path / "unused.npz", pause_after_step=KILL_AFTER_STEP), env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    killed_at = None
    for line in victim.stdout:
        if line.strip() == f"step {KILL_AFTER_STEP}":
            victim.send_signal(signal.SIGKILL)
            killed_at = KILL_AFTER_STEP
            break
    victim.wait(timeout=120)
    assert killed_at is not None, victim.stderr.read()[-3000:]
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "unused.npz").exists()
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))
    assert checkpoints[-1] == "ckpt-4.index", checkpoints

    resumed = subprocess.run(
        _command(tmp_path / "run", tmp_path / "resumed.npz"), env=_env(),
        capture_output=True, text=True, timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps_run = [int(line.split()[1]) for line in resumed.stdout.splitlines() if line.startswith("step ")]
    assert steps_run == list(range(5, TOTAL_STEPS + 1)), steps_run
    assert reference.wait(timeout=240) == 0, reference.stderr.read()[-3000:]

    expected = np.load(tmp_path / "reference.npz")
    got = np.load(tmp_path / "resumed.npz")
    assert sorted(expected.files) == sorted(got.files)
    for name in expected.files:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    print(f"resume test: {time.perf_counter() - start:.1f} s")


def main(argv):
    model_dir, out, pause_after_step = argv[0], argv[1], int(argv[2])
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from toy_dual_encoder import build_toy_dual_encoder
    from toy_dual_encoder import make_toy_dataset

    from florence_keras.training import UniCLTrainer
    from florence_keras.training import florence_stages
    import tensorflow as tf

    trainer = UniCLTrainer(
        lambda: build_toy_dual_encoder(dropout=0.2),
        make_toy_dataset(),
        model_dir=model_dir,
        total_steps=TOTAL_STEPS,
        global_batch_size=8,
        peak_learning_rate=3e-3,
        warmup_steps=2,
        chunk_size=4,
        stages=florence_stages(
            TOTAL_STEPS, image_size=16, augmented_texts_off_step=3, high_resolution_step=6,
            high_resolution_image_size=20,
        ),
        checkpoint_every=2,
        log_every=1,
        deterministic=True,
        seed=11,
        verbose=0,
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
    weights = {f"{i}:{v.path}": tf.convert_to_tensor(v).numpy() for i, v in enumerate(trainer.model.variables)}
    np.savez(out, **weights)


if __name__ == "__main__":
    main(sys.argv[1:])
