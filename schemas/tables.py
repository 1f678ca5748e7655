"""One `TableSpec` per lake table, and the `TABLES` mapping in the order the lake writes them.

Times are seconds on the session's master clock, positions µm, rates Hz: the column is `time`,
the unit lives here. `sessions` is written last: its row is the commit point of an ingest.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.spec import Column, TableSpec

STR = pa.string()
I64 = pa.int64()
F64 = pa.float64()
F32 = pa.float32()
BOOL = pa.bool_()
UTC = pa.timestamp("us", tz="UTC")

SESSION_ID = Column(
    "session_id", STR, "", "Session identifier, unique in the lake; the partition column", False
)


def _time(name: str, description: str, *, nullable: bool = True) -> Column:
    return Column(name, F64, "s", description, nullable)


PROBES = TableSpec(
    name="probes",
    description="One row per probe (NWB electrode group or rig sorting folder), with clock fit.",
    columns=(
        SESSION_ID,
        Column("probe", STR, "", "Probe name, unique in the session (e.g. 'probeA')", False),
        Column("probe_id", I64, "", "Numeric probe id given by the source (Allen probe id)"),
        Column("device", STR, "", "Name of the recording device the probe belongs to"),
        Column("description", STR, "", "Free-text description from the source"),
        Column("location", STR, "", "Location of the probe as the source describes it"),
        Column("manufacturer", STR, "", "Device manufacturer"),
        Column("model", STR, "", "Probe model or phase (e.g. 'Neuropixels 1.0', '3a')"),
        Column("serial_number", STR, "", "Probe serial number"),
        Column("sampling_rate", F64, "Hz", "Nominal spike-band sampling rate of the probe clock"),
        Column("lfp_sampling_rate", F64, "Hz", "Nominal LFP-band sampling rate"),
        Column("has_lfp_data", BOOL, "", "Whether LFP data exist for this probe at the source"),
        Column(
            "aligned_sampling_rate",
            F64,
            "Hz",
            "Effective sampling rate on the master clock (nominal rate / clock_slope)",
        ),
        Column("clock_slope", F64, "s/s", "a in t_master = a * t_probe + b (least squares)"),
        Column("clock_offset", F64, "s", "b in t_master = a * t_probe + b (least squares)"),
        Column("clock_rms_residual", F64, "s", "RMS residual of the clock fit over all barcodes"),
        Column("clock_max_residual", F64, "s", "Largest absolute residual of the clock fit"),
        Column("clock_n_barcodes", I64, "", "Number of barcodes matched between the clocks"),
        Column(
            "clock_n_edges",
            I64,
            "",
            "Barcode edges (rises and falls of every matched barcode) the fit went through",
        ),
        Column(
            "clock_status",
            STR,
            "",
            "'aligned', 'flagged' (max residual above one sync sample) or 'unaligned' (kept on "
            "its own clock, see clock_note); null when the source was already aligned (NWB)",
        ),
        Column("clock_note", STR, "", "Why a probe is flagged or unaligned"),
    ),
    key=("session_id", "probe"),
    sort_by=("probe",),
    open_columns=True,
)

CHANNELS = TableSpec(
    name="channels",
    description="One row per recording channel (NWB electrode or probe site).",
    columns=(
        SESSION_ID,
        Column("probe", STR, "", "Probe the channel is on (probes.probe)", False),
        Column(
            "channel",
            I64,
            "",
            "Channel index on its probe (Allen local_index; else the channel's rank within its "
            "probe in source order)",
            False,
        ),
        Column("channel_id", I64, "", "Electrode id given by the source (NWB electrodes id)"),
        Column(
            "probe_horizontal_position", F64, "µm", "Horizontal position of the site on the probe"
        ),
        Column("probe_vertical_position", F64, "µm", "Vertical position of the site on the probe"),
        Column("ccf_ap", F64, "µm", "Anterior-posterior brain coordinate (+ posterior; NWB x)"),
        Column("ccf_dv", F64, "µm", "Dorsal-ventral brain coordinate (+ ventral; NWB y)"),
        Column("ccf_ml", F64, "µm", "Medial-lateral brain coordinate (+ right; NWB z)"),
        Column(
            "structure_acronym",
            STR,
            "",
            "Brain structure of the channel as the source names it (Allen: CCF acronym; NWB "
            "electrodes 'location')",
        ),
        Column("structure_id", I64, "", "CCF structure id when known"),
        Column("valid", BOOL, "", "Whether the channel's data are usable (Allen valid_data)"),
    ),
    key=("session_id", "probe", "channel"),
    sort_by=("probe", "channel"),
    open_columns=True,
)

UNITS = TableSpec(
    name="units",
    description=(
        "One row per sorted unit, with every quality and waveform metric the source has "
        "(names kept as the source wrote them)."
    ),
    columns=(
        SESSION_ID,
        Column("unit_id", I64, "", "Unit id, unique within the session", False),
        Column("probe", STR, "", "Probe the unit was recorded on (probes.probe)"),
        Column("cluster_id", I64, "", "Cluster id in the spike sorter's output"),
        Column("peak_channel", I64, "", "Channel index of the peak channel on its probe"),
        Column(
            "peak_channel_id", I64, "", "Electrode id of the peak channel (channels.channel_id)"
        ),
        Column("quality", STR, "", "Curation label or quality (e.g. 'good', 'mua', 'noise')"),
        Column("spike_count", I64, "", "Number of spikes of the unit in the spikes table", False),
        Column("firing_rate", F64, "Hz", "Mean firing rate as reported by the source"),
    ),
    key=("session_id", "unit_id"),
    sort_by=("unit_id",),
    open_columns=True,
)

SPIKES = TableSpec(
    name="spikes",
    description="The flattened spike index: one row per spike, on the session's master clock.",
    columns=(
        SESSION_ID,
        Column("unit_id", I64, "", "Unit the spike belongs to (units.unit_id)", False),
        _time("time", "Spike time in seconds on the session's master clock", nullable=False),
        Column("amplitude", F64, "source", "Spike amplitude as the source reports it, when known"),
    ),
    key=("session_id", "unit_id", "time"),
    sort_by=("unit_id", "time"),
    unique_key=False,
    notes="A sorter can emit two spikes of one unit at the same time; the key is not unique.",
)

WAVEFORMS = TableSpec(
    name="waveforms",
    description="Mean (and sd) spike waveform per unit, flattened row-major (sample, channel).",
    columns=(
        SESSION_ID,
        Column("unit_id", I64, "", "Unit (units.unit_id)", False),
        Column(
            "waveform_mean",
            pa.list_(F32),
            "source",
            "Mean waveform, n_samples * n_channels values in (sample, channel) order",
            False,
        ),
        Column("waveform_sd", pa.list_(F32), "source", "Standard deviation, same layout"),
        Column("n_samples", I64, "", "Samples per channel in the waveform", False),
        Column(
            "n_channels", I64, "", "Channels in the waveform (1 for a single-channel mean)", False
        ),
        Column("sampling_rate", F64, "Hz", "Sampling rate of the waveform samples, when known"),
    ),
    key=("session_id", "unit_id"),
    sort_by=("unit_id",),
)

TRIALS = TableSpec(
    name="trials",
    description="One row per behavioural trial, with every task column the source has.",
    columns=(
        SESSION_ID,
        Column(
            "trial_index", I64, "", "Trial id (NWB trials id; 0-based order for rig sources)", False
        ),
        _time("start_time", "Trial start", nullable=False),
        _time("stop_time", "Trial end", nullable=False),
    ),
    key=("session_id", "trial_index"),
    sort_by=("trial_index",),
    open_columns=True,
    notes="Ragged task columns (e.g. lick_times) are list columns; times inside them are seconds.",
)

LICKS = TableSpec(
    name="licks",
    description="One row per detected lick.",
    columns=(
        SESSION_ID,
        _time("time", "Lick time", nullable=False),
        Column(
            "source",
            STR,
            "",
            "Where the lick came from: NWB series name, spout, sync line or task file",
            False,
        ),
    ),
    key=("session_id", "source", "time"),
    sort_by=("source", "time"),
    unique_key=False,
)

REWARDS = TableSpec(
    name="rewards",
    description="One row per delivered reward.",
    columns=(
        SESSION_ID,
        _time("time", "Reward delivery time", nullable=False),
        Column("volume", F64, "mL", "Reward volume"),
        Column("auto_rewarded", BOOL, "", "Whether the reward was given automatically (free)"),
        Column("source", STR, "", "Where the reward came from (NWB series, task file)"),
    ),
    key=("session_id", "time"),
    sort_by=("time",),
    unique_key=False,
)

RUNNING_SPEED = TableSpec(
    name="running_speed",
    description="Running speed of the animal on the wheel.",
    columns=(
        SESSION_ID,
        _time("time", "Sample time", nullable=False),
        Column("speed", F64, "cm/s", "Running speed (low-pass filtered where the source does so)"),
    ),
    key=("session_id", "time"),
    sort_by=("time",),
    unique_key=False,
)

INTERVALS = TableSpec(
    name="intervals",
    description=(
        "Rows of every interval table other than trials: epochs, invalid_times, stimulus "
        "presentations and the rest, with their columns."
    ),
    columns=(
        SESSION_ID,
        Column("name", STR, "", "Interval table name (e.g. 'epochs', 'invalid_times')", False),
        Column("row", I64, "", "Row id within that interval table (NWB id)", False),
        _time("start_time", "Interval start", nullable=False),
        _time("stop_time", "Interval end", nullable=False),
        Column("tags", pa.list_(STR), "", "Tags of the interval (NWB TimeIntervals tags)"),
        Column(
            "module",
            STR,
            "",
            "Processing module the table sits in (NWB /processing/<module>/<name>); null for "
            "/intervals/<name>",
        ),
    ),
    key=("session_id", "name", "row"),
    sort_by=("name", "row"),
    open_columns=True,
    notes=(
        "Columns of all interval tables of a session share this table; a column absent in one "
        "is null there. Stimulus presentations have their own table (stimulus_presentations)."
    ),
)

STIMULUS_PRESENTATIONS = TableSpec(
    name="stimulus_presentations",
    description=(
        "Rows of every stimulus presentation table (Allen `*_presentations` interval tables), "
        "with their columns typed as the source typed them."
    ),
    columns=(
        SESSION_ID,
        Column(
            "name", STR, "", "Presentation table name (e.g. 'flash_250ms_presentations')", False
        ),
        Column("row", I64, "", "Row id within that table (NWB id)", False),
        _time("start_time", "Presentation start", nullable=False),
        _time("stop_time", "Presentation end", nullable=False),
        Column("tags", pa.list_(STR), "", "Tags of the presentation (NWB TimeIntervals tags)"),
        Column(
            "module",
            STR,
            "",
            "Processing module the table sits in; null for /intervals/<name>",
        ),
    ),
    key=("session_id", "name", "row"),
    sort_by=("name", "row"),
    open_columns=True,
    notes=(
        "Kept apart from intervals so that presentation columns (is_change, image_name, "
        "omitted, flashes_since_change, ...) keep their types whatever the other interval "
        "tables hold; AllenSDK's stimulus_presentations is the same concatenation."
    ),
)

TIMESERIES = TableSpec(
    name="timeseries",
    description=(
        "Every sample of every time series of the session (position, head direction, eye "
        "tracking, wheel, ...), one row per sample and component; what each series is: "
        "timeseries_info."
    ),
    columns=(
        SESSION_ID,
        Column("series", STR, "", "Series name (timeseries_info.series)", False),
        Column(
            "component",
            STR,
            "",
            "Component: 'data' for one value per sample; x, y, z for a SpatialSeries; the "
            "column index ('0', '1', ...) of other 2-d data; the dataset name of per-sample "
            "datasets beside data (an EllipseSeries' area, width, height, angle); '' for a "
            "series whose data were not copied (sample times only)",
            False,
        ),
        Column("sample", I64, "", "Sample index within the series (0-based, source order)", False),
        _time(
            "time", "Sample time (timestamps, else starting_time + sample / rate)", nullable=False
        ),
        Column(
            "value",
            F64,
            "source",
            "Value in timeseries_info.unit (the source's conversion and offset applied); "
            "booleans as 0/1",
        ),
        Column("text", STR, "", "Value of text series (NWB AnnotationSeries); null otherwise"),
    ),
    key=("session_id", "series", "component", "sample"),
    sort_by=("series", "component", "sample"),
    notes="Long: a 3-column position of n samples is 3 n rows. Per-session files (can be large).",
)

TIMESERIES_INFO = TableSpec(
    name="timeseries_info",
    description="One row per time series of the session: where it was, what it is, its unit.",
    columns=(
        SESSION_ID,
        Column(
            "series",
            STR,
            "",
            "Series name, unique in the session (qualified by its "
            "parents when two series share a name)",
            False,
        ),
        Column("path", STR, "", "NWB path of the series (e.g. /acquisition/Position/pos)", False),
        Column("neurodata_type", STR, "", "NWB type (TimeSeries, SpatialSeries, EllipseSeries...)"),
        Column("namespace", STR, "", "Namespace of that type ('core' or an extension)"),
        Column(
            "container",
            STR,
            "",
            "Type of the group holding it (Position, CompassDirection, BehavioralEvents, "
            "EyeTracking, ProcessingModule, ...); null directly under /acquisition or /stimulus",
        ),
        Column("description", STR, "", "The series' description"),
        Column("comments", STR, "", "The series' comments"),
        Column("unit", STR, "", "Unit of the values as the source states it"),
        Column("components", pa.list_(STR), "", "Components, in timeseries order"),
        Column("n_samples", I64, "", "Samples of the series"),
        Column("rate", F64, "Hz", "Sampling rate when the series has no timestamps"),
        Column("starting_time", F64, "s", "Time of the first sample when it has no timestamps"),
        Column("conversion", F64, "", "Source data x conversion + offset = value (applied)"),
        Column("offset", F64, "", "See conversion (applied)"),
        Column("resolution", F64, "", "Smallest meaningful difference of the data (source)"),
        Column("data_dtype", STR, "", "Type of the source data (e.g. float64, int8, bool)"),
        Column("data_shape", pa.list_(I64), "", "Shape of the source data"),
        Column(
            "data_copied",
            BOOL,
            "",
            "Whether the values are in timeseries (false: images, "
            "electrical series and other dense data, listed in inventory)",
        ),
        Column(
            "lake_table",
            STR,
            "",
            "Lake table also decoded from this series (licks, rewards, running_speed); null "
            "when none",
        ),
        Column(
            "attributes",
            STR,
            "",
            "Everything else the series carries, as JSON: its attributes and those of its "
            "data, small datasets (reference_frame, external_file, ...), the container's and "
            "module's descriptions (for the export)",
        ),
    ),
    key=("session_id", "series"),
    sort_by=("series",),
)

INVENTORY = TableSpec(
    name="inventory",
    description=(
        "What a source carries that the lake does not copy (raw and LFP electrical series, "
        "images, tables with no home): one row per dataset left out."
    ),
    columns=(
        SESSION_ID,
        Column("path", STR, "", "Path of the dataset in the source file", False),
        Column("neurodata_type", STR, "", "NWB type of the object it belongs to"),
        Column("dtype", STR, "", "Data type of the dataset"),
        Column("shape", pa.list_(I64), "", "Shape of the dataset"),
        Column("bytes", I64, "B", "Bytes the dataset takes in the source file"),
        Column("reason", STR, "", "Why it is not in the lake"),
    ),
    key=("session_id", "path"),
    sort_by=("path",),
)

DESCRIPTIONS = TableSpec(
    name="descriptions",
    description=(
        "The source's own descriptions of its tables, columns and processing modules, and how "
        "each column was laid out (scalar or ragged), so an export says what the source said."
    ),
    columns=(
        SESSION_ID,
        Column("path", STR, "", "NWB path of the table or module (e.g. /units)", False),
        Column("column", STR, "", "NWB column name; '' for the table or module itself", False),
        Column("description", STR, "", "The source's description"),
        Column("ragged", I64, "", "Index levels of the column (0 scalar, 1 ragged, 2 doubly)"),
    ),
    key=("session_id", "path", "column"),
    sort_by=("path", "column"),
)

CLOCK_ALIGNMENT = TableSpec(
    name="clock_alignment",
    description="Audit of every clock fit: one row per barcode seen on a probe clock.",
    columns=(
        SESSION_ID,
        Column("probe", STR, "", "Probe whose clock was fitted (probes.probe)", False),
        Column("barcode", I64, "", "Barcode value decoded from the probe's TTL edges", False),
        _time("probe_time", "Barcode start on the probe clock", nullable=False),
        _time("sync_time", "Barcode start on the sync (master) clock; null when unmatched"),
        _time("residual", "sync_time minus the fitted mapping of probe_time; null when unmatched"),
        Column("used_in_fit", BOOL, "", "Whether the barcode entered the least-squares fit", False),
        Column(
            "n_edges",
            I64,
            "",
            "Edges of the barcode (rises and falls of the start pulse and of every bit) paired "
            "between the clocks and used in the fit; 0 when the barcode was not used",
        ),
        _time("edge_rms_residual", "RMS residual of those edges (fitted mapping minus sync time)"),
    ),
    key=("session_id", "probe", "probe_time"),
    sort_by=("probe", "probe_time"),
)

SYNC_EDGES = TableSpec(
    name="sync_edges",
    description="Every edge of every digital line of the sync file, decoded in one pass.",
    columns=(
        SESSION_ID,
        Column("line", I64, "", "Digital line (bit) number, 0-31", False),
        Column("label", STR, "", "Line label from the sync file ('' when unlabelled)"),
        Column("sample", I64, "", "Sync counter value of the edge (rollover unwrapped)", False),
        _time("time", "Edge time on the sync clock", nullable=False),
        Column("rising", BOOL, "", "True for a 0->1 edge, False for 1->0", False),
    ),
    key=("session_id", "line", "sample"),
    sort_by=("line", "sample"),
)

_SESSION_TABLES = (
    PROBES,
    CHANNELS,
    UNITS,
    SPIKES,
    WAVEFORMS,
    TRIALS,
    LICKS,
    REWARDS,
    RUNNING_SPEED,
    INTERVALS,
    STIMULUS_PRESENTATIONS,
    TIMESERIES,
    TIMESERIES_INFO,
    CLOCK_ALIGNMENT,
    SYNC_EDGES,
    INVENTORY,
    DESCRIPTIONS,
)

#: Columns of `sessions` that the lake fills at commit time; decoders leave them null.
LAKE_FILLED = (
    "source_hash",
    "source_stat",
    "pipeline_version",
    "ingest_id",
    "ingested_at",
    *(f"n_{t.name}" for t in _SESSION_TABLES),
)

SESSIONS = TableSpec(
    name="sessions",
    description=(
        "One row per session: metadata, subject, provenance; its row names the ingest whose "
        "rows are current (the commit point)."
    ),
    columns=(
        SESSION_ID,
        Column("identifier", STR, "", "The source's own identifier (NWB identifier)"),
        Column("nwb_session_id", STR, "", "The source's own session id (NWB /general/session_id)"),
        Column("session_start_time", UTC, "", "Start of the session (UTC)"),
        Column(
            "session_start_utc_offset",
            F64,
            "s",
            "The source's local offset from UTC at the start (-18000 for -05:00); null when the "
            "source gave a time without offset",
        ),
        Column(
            "timestamps_reference_time",
            STR,
            "",
            "Zero of the file's times as the source wrote it (NWB timestamps_reference_time)",
        ),
        Column(
            "file_create_date",
            pa.list_(STR),
            "",
            "When the source file was created and modified, as written (NWB file_create_date)",
        ),
        Column("session_description", STR, "", "Free-text description from the source"),
        Column("session_type", STR, "", "Session or stimulus type (e.g. Allen session_type)"),
        Column("rig", STR, "", "Rig or equipment name"),
        Column("experimenter", pa.list_(STR), "", "Experimenters"),
        Column("institution", STR, "", "Institution"),
        Column("lab", STR, "", "Lab"),
        Column("experiment_description", STR, "", "Description of the experiment"),
        Column("keywords", pa.list_(STR), "", "Keywords (NWB /general/keywords)"),
        Column("related_publications", pa.list_(STR), "", "Publications (DOIs) about the session"),
        Column("source_script", STR, "", "Script that made the source file"),
        Column("source_script_file_name", STR, "", "File name of that script"),
        Column("nwb_notes", STR, "", "The source's own notes (NWB /general/notes)"),
        Column("protocol", STR, "", "Experimental protocol (NWB /general/protocol)"),
        Column("surgery", STR, "", "Surgery notes (NWB /general/surgery)"),
        Column("virus", STR, "", "Virus notes (NWB /general/virus)"),
        Column("pharmacology", STR, "", "Pharmacology notes (NWB /general/pharmacology)"),
        Column("slices", STR, "", "Slices notes (NWB /general/slices)"),
        Column("data_collection", STR, "", "Data collection notes (NWB /general/data_collection)"),
        Column(
            "optogenetic_sites",
            STR,
            "",
            "Optogenetic stimulus sites as JSON: a list of {name, description, "
            "excitation_lambda (nm), location, device}",
        ),
        Column("subject_description", STR, "", "Description of the subject"),
        Column("subject_weight", STR, "", "Weight of the subject as written"),
        Column("subject_id", STR, "", "Subject (animal) id"),
        Column("species", STR, "", "Species"),
        Column("sex", STR, "", "Sex as the source writes it (M, F, U, O)"),
        Column("genotype", STR, "", "Genotype"),
        Column("strain", STR, "", "Strain"),
        Column("date_of_birth", UTC, "", "Subject's date of birth (UTC)"),
        Column("age", STR, "", "Age as an ISO-8601 duration, as the source wrote it (e.g. P205D)"),
        Column("age_in_days", F64, "d", "Age at session start in days"),
        Column("nwb_version", STR, "", "NWB version of the source file, when it is NWB"),
        Column("has_ephys", BOOL, "", "Whether the session has units and spikes"),
        Column("has_task", BOOL, "", "Whether the session has trials or other task data"),
        Column("has_sync", BOOL, "", "Whether a sync file was decoded (raw rig sessions)"),
        Column("notes", STR, "", "Decoder notes: quirks handled, probes left unaligned, ..."),
        Column("source_kind", STR, "", "Decoder that read the source ('nwb', 'rig', ...)"),
        Column("source_uri", STR, "", "Path or URI of the source file or folder"),
        Column("decoder_version", STR, "", "Version of that decoder"),
        Column("decoder_options", STR, "", "Decoder options as JSON"),
        Column("source_hash", STR, "", "SHA-256 over the source files the decoder read"),
        Column(
            "source_stat",
            STR,
            "",
            "SHA-256 over those files' names, sizes and modification times (re-ingest skips "
            "hashing a source whose quick fingerprint is unchanged)",
        ),
        Column("pipeline_version", STR, "", "nplake and decoder versions that made these rows"),
        Column("ingest_id", STR, "", "The ingest whose rows are current for this session"),
        Column("ingested_at", UTC, "", "When that ingest was committed (UTC)"),
        *(
            Column(f"n_{t.name}", I64, "", f"Rows of this session in {t.name}")
            for t in _SESSION_TABLES
        ),
    ),
    key=("session_id",),
    sort_by=("session_id",),
)

#: Every table of the lake, by name, in write order (sessions last: the commit point).
TABLES: dict[str, TableSpec] = {t.name: t for t in (*_SESSION_TABLES, SESSIONS)}

#: Tables whose rows belong to an ingest (all but sessions).
SESSION_SCOPED: tuple[str, ...] = tuple(t.name for t in _SESSION_TABLES)
