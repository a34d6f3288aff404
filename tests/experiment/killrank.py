"""torchrun entry point for tests: `testbed ...` where rank KILL_RANK SIGKILLs itself at its KILL_STEP-th step."""
import os
import signal
import sys

from testbed.cli import main
from testbed.engine.distributed import ShardedEngine

real_step = ShardedEngine.step
steps = 0


def step(self, *args, **kwargs):
    global steps
    steps += 1
    if self.world.rank == int(os.environ["KILL_RANK"]) and steps == int(os.environ["KILL_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(self, *args, **kwargs)


ShardedEngine.step = step
sys.exit(main())
