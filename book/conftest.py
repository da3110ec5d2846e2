# nbval runs each chapter in a kernel that inherits this environment: no
# progress bars from vaelib.fit in the outputs it compares (readers running the
# notebooks see them).
import os

os.environ["VAEBOOK_PROGRESS"] = "0"
