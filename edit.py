"""Edit a trained scene with a text instruction:

    python edit.py -m out/juice --instruction "make the juice box red" --mode restyle \\
        [--rounds 3] [--round_iters 2500] [--roi_box VIEW:x1,y1,x2,y2 ...] [--resume]

Rounds of render -> InstructPix2Pix edit -> swap training targets -> optimise -> save; see
editing/session.py for a run, editing/rounds.py for a round and editing/artifacts.py for the
output layout.
"""
import sys

from utils.errors import user_errors_exit


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    with user_errors_exit("edit.py"):
        from editing.config import resolve_config
        cfg = resolve_config(argv)
        from editing.session import EditSession
        return EditSession(cfg).run()


if __name__ == "__main__":
    main()
