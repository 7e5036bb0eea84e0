# Sourced by CI's legs: find_python X.Y prints a Python X.Y interpreter (pyenv's, else pythonX.Y on
# the PATH), or nothing when the machine has none.
find_python() {
    if command -v pyenv >/dev/null 2>&1 && pyenv prefix "$1" >/dev/null 2>&1; then
        local found
        found="$(pyenv prefix "$1")/bin/python$1"
        [ -x "$found" ] && echo "$found"
    elif command -v "python$1" >/dev/null 2>&1; then
        command -v "python$1"
    fi
    return 0  # none found is not an error: the caller skips its leg
}
