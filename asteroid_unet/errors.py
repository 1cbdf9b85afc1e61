"""One-line errors: the exceptions the package raises for bad input, and the line every entry point prints."""


class CheckpointError(ValueError):  # a ValueError, like Asteroid's own from_pretrained refusals
    """A model file that is not a loadable UNet package, with a one-line reason."""


def one_line(err: BaseException, limit: int = 0) -> str:
    """The first line of an exception's message (at most ``limit`` characters when given), or its type's name."""
    text = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:limit] if limit else text


def load_failure(spec, err: BaseException) -> str:
    """Why the model ``spec`` (a name, path or repo id; None for the default) could not be loaded: a
    :class:`CheckpointError`'s own line (it names the file), else ``<spec>: cannot load model (<reason>)``."""
    if isinstance(err, CheckpointError):
        return one_line(err)
    return f"{spec or 'default weights'}: cannot load model ({one_line(err)})"


class Refusal(ValueError):
    """Something the web page refuses to do (no room on its disk, a song over its limits), with the
    one line a visitor reads."""
