"""Start the Keras backend without TensorFlow's C++ start-up log lines on the terminal.

TensorFlow's runtime writes lines such as "oneDNN custom operations are on" and
"Could not find cuda drivers" to file descriptor 2 while it loads, before any
Python-level setting applies. The kit's commands (`python -m labs...`, `tuning`,
`coursekit.assignments`) start Keras inside `quiet_stderr()` (see `coursekit/__init__.py`),
so that a command's one-line error stays one line. What was written is replayed if the
start fails.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def quiet_stderr():
    """Capture file descriptor 2 inside the block; replay it if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def start_backend():
    """Import Keras and run one op (device start-up messages too), quietly."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_stderr():
        import keras

        keras.ops.convert_to_numpy(keras.ops.zeros((1,)))
