"""One job (build, sample, evaluate, write) and the gathering of a sweep."""
