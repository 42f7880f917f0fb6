"""The calling convention, held for every public function: subject positional, options keyword-only."""
import importlib
import inspect
import pkgutil

import tlhelpers

# Positional parameters that have a default and still are part of the subject of the call.
SUBJECT_WITH_DEFAULT = {
    "fit": {"val_loader"},              # fit(model, train_loader, val_loader)
    "load_dataset": {"split"},          # load_dataset("hymenoptera", "val")
    "get_device": {"device"},
    "native_bf16": {"device"},          # native_bf16(device), as get_device(device)
    "bf16_enabled": {"device"},
    "mixed_precision": {"device"},      # with mixed_precision(device): ...
    "describe_precision": {"device"},
    "seed_everything": {"seed"},
    "forward": {"targets"},             # batch.forward(model, inputs, targets)
    "show_images": {"labels"},          # show_images(images, labels)
    "main": {"argv"},                   # command lines: main(["--flag", ...])
}
RECORDS = {"DatasetInfo", "Source", "ModelSpec", "Anatomy"}  # dataclasses: fields, not options
# Loops and their shared options: name -> {option: default}. Long loops show progress by default;
# the quick evaluation passes do not. Only loops that draw random numbers take a seed.
LOOPS = {
    "fit": {"seed": None, "device": None, "progress": True},
    "fit_adapt": {"seed": None, "device": None, "progress": True},
    "train_one_epoch": {"device": None, "progress": True},
    "extract_features": {"device": None, "progress": True},
    "lr_finder": {"device": None, "progress": True},
    "evaluate_one_epoch": {"device": None, "progress": False},
    "predict": {"device": None, "progress": False},
    "predict_folder": {"device": None, "progress": False},
}


def public_callables():
    seen = {}
    for info in pkgutil.walk_packages(tlhelpers.__path__, "tlhelpers."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or not getattr(obj, "__module__", "").startswith("tlhelpers"):
                continue
            if inspect.isfunction(obj) or (inspect.isclass(obj) and obj.__init__ is not object.__init__):
                seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return seen


def test_options_are_keyword_only():
    offenders = []
    for qualname, obj in public_callables().items():
        if inspect.isclass(obj) and obj.__name__ in RECORDS:
            continue
        sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
        allowed = SUBJECT_WITH_DEFAULT.get(obj.__name__, set())
        for p in sig.parameters.values():
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty and p.name not in allowed:
                offenders.append(f"{qualname}({p.name}=...)")
    assert not offenders, "options must be keyword-only: " + ", ".join(offenders)


def test_loops_share_seed_device_progress():
    found = {obj.__name__: obj for obj in public_callables().values() if obj.__name__ in LOOPS}
    assert set(found) == set(LOOPS), set(LOOPS) - set(found)
    for name, options in LOOPS.items():
        params = inspect.signature(found[name]).parameters
        for option, default in options.items():
            assert option in params, f"{name} lacks {option}="
            p = params[option]
            assert p.kind == p.KEYWORD_ONLY and p.default == default, (name, option, p.kind, p.default)


def test_every_public_callable_has_a_docstring():
    missing = []
    for qualname, obj in public_callables().items():
        doc = inspect.getdoc(obj) or ""
        if not doc:
            missing.append(qualname)
    assert not missing, missing
