"""One job (build, sample, evaluate, write), the gathering of a sweep, and the figures made
from several jobs (``make figures``, ``make figures-ffhq``)."""
