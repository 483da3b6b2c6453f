"""Run a command while other work crowds the cores: a NumPy (OpenBLAS) matmul loop on
--threads threads (or a PyTorch one, or --threads busy loops), the kind of neighbour that made 2-thread training 10-20x slower before
every region of ours took part in the back-off (csrc/core/parallel.h). Prints the command's
output and the load average before and after; the crowder is stopped however the command
ends. Compare builds under the same crowding by giving a command that alternates them:

    python benchmarks/crowded.py [--threads 2] -- python cnn_epoch.py improved 2 1600 3 DIR_A DIR_B
"""
import argparse
import os
import signal
import subprocess
import sys
import time

CROWDERS = {
    "matmul": """
import numpy as np
a = np.ones((384, 384), np.float32)
while True:
    a @ a
""",
    # PyTorch on --threads OpenMP threads, short regions whose threads spin between them
    "torch": """
import torch
torch.set_num_threads(int(__import__("os").environ["OMP_NUM_THREADS"]))
a = torch.ones(256, 256)
while True:
    a @ a
""",
    # one process a thread, never sleeping: an OpenMP program's spinning threads
    "spin": """
while True:
    pass
""",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="the crowder's threads")
    ap.add_argument("--crowder", choices=sorted(CROWDERS), default="matmul",
                    help="matmul: one NumPy process on --threads threads; torch: the same in "
                    "PyTorch; spin: --threads busy loops")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command to time, after --")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    print("load average before: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the crowders
    n = args.threads if args.crowder == "spin" else 1
    crowders = [subprocess.Popen([sys.executable, "-c", CROWDERS[args.crowder]], env=env) for _ in range(n)]
    try:
        time.sleep(3.0)  # let it start (importing PyTorch takes a second or two)
        status = subprocess.call(command)
    finally:
        for c in crowders:
            c.kill()
            c.wait()
    print("load average after: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
