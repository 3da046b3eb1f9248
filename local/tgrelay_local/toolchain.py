"""The python3.13 `sam build` needs for the python3.13 runtime, found beside the default Python."""

import re
import shutil
import subprocess


def find_python313(env: dict[str, str]) -> str | None:
    """Make a python3.13 visible in env (through pyenv if there is one) and return its path, or None.

    A pyenv shim exists for every installed version whether or not it is selected, so a candidate
    only counts once it actually runs as 3.13.
    """
    pyenv = shutil.which("pyenv", path=env.get("PATH"))
    if pyenv:
        listed = subprocess.run([pyenv, "versions", "--bare"], env=env, capture_output=True, text=True, check=False)
        wanted = [v for v in listed.stdout.split() if re.fullmatch(r"3\.13\.\d+", v)]
        if wanted:
            current = (
                env.get("PYENV_VERSION")
                or subprocess.run(
                    [pyenv, "version-name"], env=env, capture_output=True, text=True, check=False
                ).stdout.strip()
            )
            selected = [v for v in current.split(":") if v]
            env["PYENV_VERSION"] = ":".join(selected + [v for v in wanted if v not in selected])
    candidate = shutil.which("python3.13", path=env.get("PATH"))
    if not candidate:
        return None
    probe = subprocess.run(
        [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return candidate if probe.returncode == 0 and probe.stdout.strip() == "3.13" else None
