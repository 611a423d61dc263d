"""Map the design card's top-level folders onto the single import namespace ``junto``.

``app/`` is the package root (``import junto``); ``routers/``, ``reasoning/``, ``memory/``,
``cli/`` and ``configs/`` become ``junto.routers`` and so on, so that no bare ``app`` or ``cli``
module lands in a user's site-packages. Metadata lives in pyproject.toml; setup.py only computes
the package list, which setuptools' automatic discovery cannot do across renamed roots.
"""

from setuptools import find_packages, setup

ROOTS = {
    "junto": "app",
    "junto.routers": "routers",
    "junto.reasoning": "reasoning",
    "junto.memory": "memory",
    "junto.cli": "cli",
    "junto.configs": "configs",
}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"junto.configs": ["*.yaml", "routers/*/*", "pools/*.yaml", "datasets/*.jsonl", "datasets/LICENSE-*", "costs/*.json",
                                    "monitors/*.json", "datasets/monitor/*"]},
    include_package_data=False,
)
