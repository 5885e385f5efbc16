"""ml_platform.components' public API: every exported name resolves, every ComponentResource of the package is
exported with the argument types it needs, and `help()` documents every field and output."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pulumi

from ml_platform import components


def test_every_component_resource_is_exported():
    defined = set()
    for module in pkgutil.walk_packages(components.__path__, f"{components.__name__}."):
        for name, value in vars(importlib.import_module(module.name)).items():
            if inspect.isclass(value) and issubclass(value, pulumi.ComponentResource) and value.__module__.startswith(components.__name__):
                defined.add(name)
    assert defined and defined <= set(components.__all__), sorted(defined - set(components.__all__))
    assert {f"{name}Args" for name in defined} <= set(components.__all__)


def test_help_documents_every_field_and_output():
    for name in components.__all__:
        value = getattr(components, name)
        assert value.__name__ == name
        doc = value.__doc__ or ""
        assert doc.strip(), name
        if not issubclass(value, pulumi.ComponentResource):
            assert "Fields:" in doc, name
        assert "(undocumented)" not in doc, [line for line in doc.splitlines() if "(undocumented)" in line]
    assert "  s3_prefix: The model's prefix in the store" in components.ModelServiceArgs.__doc__
    assert "Outputs:\n  vpc_id: The VPC's ID." in components.Network.__doc__


def test_an_unknown_name_is_an_attribute_error():
    try:
        components.NotAComponent  # noqa: B018
    except AttributeError as err:
        assert "NotAComponent" in str(err)
    else:
        raise AssertionError("expected AttributeError")
