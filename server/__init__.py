"""The python_env server: environment, transport, sandbox, tasks and grading."""

if __name__ == "server":
    # Imported from a checkout as a top-level package: OpenEnv's `app: server.app:app`
    # (its UV, Modal and Daytona providers run `uvicorn server.app:app` in the repo root)
    # and its template's `uvicorn server.app:app --reload`. The repo root is the package
    # `python_env`, whatever its directory is called: load this checkout under that name
    # and make `server.app` the one `python_env.server.app` (its relative imports intact).
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    if "python_env" not in sys.modules:
        _root = Path(__file__).resolve().parent.parent
        _spec = importlib.util.spec_from_file_location(
            "python_env", _root / "__init__.py", submodule_search_locations=[str(_root)]
        )
        assert _spec is not None and _spec.loader is not None
        _package = importlib.util.module_from_spec(_spec)
        sys.modules["python_env"] = _package
        _spec.loader.exec_module(_package)
    sys.modules["server.app"] = importlib.import_module("python_env.server.app")
