"""python_env: a sandboxed CPython environment for training and evaluating coding agents."""

# Absolute imports: test runners may import this file outside its package (the repo
# root is the package, under whatever name the checkout's directory has).
from python_env.openenv_light import defer_openenv_server

defer_openenv_server()  # a client-only process imports no web server (see the module)

from python_env.client import PythonEnv  # noqa: E402
from python_env.errors import PythonEnvError  # noqa: E402
from python_env.models import PythonAction, PythonObservation, PythonState  # noqa: E402

__all__ = ["PythonAction", "PythonEnv", "PythonEnvError", "PythonObservation", "PythonState"]
