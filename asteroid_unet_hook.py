"""Registers UNet with asteroid.models whenever asteroid.models is imported, without importing us first.

Loaded at interpreter start by ``asteroid_unet_autoregister.pth`` (installed next to the package):
it only adds a meta path hook, so it costs nothing until ``asteroid.models`` is imported. Then
``BaseModel.from_pretrained`` and ``asteroid-infer`` find a saved UNet by name.
"""
import importlib.util
import sys

_TARGET = "asteroid.models"


class _RegisterAfterImport:  # a meta path finder needs only find_spec (importlib.abc costs ~8 ms to import)
    def find_spec(self, name, path=None, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)  # let the normal finders locate asteroid.models
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                import asteroid_unet  # noqa: F401  (registers UNet)
            except Exception:  # never break asteroid itself
                pass

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    if not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
