using System.ComponentModel.DataAnnotations;
using JobLog.Internal;
using Microsoft.Extensions.Options;

namespace JobLog;

/// <summary>How long the business path waits for the ledger.</summary>
public enum LedgerDurability
{
    /// <summary>
    /// Default. A consumed message is acknowledged, and <c>Publish</c> returns, once its records are in the local journal
    /// (appended in groups, within microseconds; see <see cref="JobLogOptions.SpoolDirectory"/>); the writer moves them into the
    /// database in large batches, and a journal left by a killed process is replayed by the next one. Survives the
    /// application's crash at any moment, including during a database outage. Without a usable journal directory, the
    /// same as <see cref="Committed"/>.
    /// </summary>
    Journaled = 0,

    /// <summary>Enqueue and return; flushed every <see cref="JobLogOptions.FlushInterval"/> and on shutdown. A crash can lose the last buffer.</summary>
    Buffered = 1,

    /// <summary>
    /// The strict mode. A consumed message is acknowledged, and <c>Publish</c> returns, only after its record is committed
    /// to the database (many in-flight messages share one commit), up to <see cref="JobLogOptions.AcknowledgeTimeout"/>;
    /// while the database is down, after its record is in the local journal.
    /// </summary>
    Committed = 2,

    /// <summary>The strict mode's former name.</summary>
    [Obsolete("Use LedgerDurability.Committed (the strict mode, the same behaviour) or LedgerDurability.Journaled (the default).")]
    Acknowledged = Committed,
}

/// <summary>Which database holds the ledger.</summary>
public enum LedgerProvider
{
    /// <summary>Not configured: <c>AddJobLog</c> fails at start-up.</summary>
    None = 0,

    /// <summary>SQLite (one machine).</summary>
    Sqlite = 1,

    /// <summary>PostgreSQL (several machines).</summary>
    PostgreSql = 2,
}

/// <summary>Options of <c>services.AddJobLog(...)</c>; validated at start-up (<see cref="OptionsValidationException"/>).</summary>
public sealed class JobLogOptions : IValidatableObject
{
    private readonly Dictionary<Type, TaskTypeOptions> _taskTypes = [];

    /// <summary>The ledger's database. Set with <see cref="UseSqlite"/> or <see cref="UseNpgsql"/>.</summary>
    public LedgerProvider Provider { get; private set; }

    /// <summary>The ledger's connection string.</summary>
    public string? ConnectionString { get; private set; }

    /// <summary>Create or migrate the schema at start-up. Default <c>true</c>; turn off when you migrate yourself.</summary>
    public bool MigrateOnStartup { get; set; } = true;

    /// <summary>
    /// Keep the text index the task search (<c>q</c>) uses: SQLite FTS5 trigram tables kept by triggers, PostgreSQL
    /// <c>pg_trgm</c> GIN indexes (docs/search.md). Default <c>true</c>. Off, start-up drops the index and the search
    /// finds the same rows by scanning (slow on a big ledger). The index is the writer's largest cost on SQLite (about
    /// 50 µs and 0.7 µs per character per task row, docs/benchmarks.md): turn it off where throughput matters more
    /// than searching a big ledger. Every process of one ledger must agree (each applies it at start-up).
    /// </summary>
    public bool SearchIndex { get; set; } = true;

    /// <summary>
    /// The longest one search (<c>q</c> of the task, request and command lists: dashboard, JSON API, CLI) reads for. A text no
    /// index narrows (punctuation only on PostgreSQL, a text whose every trigram is in most rows) can otherwise read the
    /// whole ledger (seconds at a million tasks). When the budget runs out the page holds the matches found so far, says
    /// that the search stopped and how far back it looked, and its cursor searches on from there (<see cref="Querying.SearchStop"/>,
    /// docs/search.md "The read budget"). Default 2 s; at most 1 day.
    /// </summary>
    [Positive]
    [AtMostDays(1)]
    public TimeSpan SearchBudget { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// In <see cref="LedgerDurability.Journaled"/> mode, when the writer is busy (batches of a quarter of
    /// <see cref="MaxBatchSize"/> or more), it holds a dispatch back up to this long for its run, so that its task row is
    /// written once with its run's state (Recording/HeldDispatches.cs); zero: off. Default
    /// <see cref="Recording.LedgerWriter.MaxHold"/> (5 s): on the bus the SQLite writer's CPU per message fell by a
    /// quarter (docs/benchmarks.md, session 25). Internal: set by the bench to measure it.
    /// </summary>
    internal TimeSpan DispatchHold { get; set; } = Recording.LedgerWriter.MaxHold;

    /// <summary>The most dispatches held back at once (<see cref="DispatchHold"/>); 0: eight batches' worth (<see cref="MaxBatchSize"/>).</summary>
    internal int DispatchHoldCapacity { get; set; }

    /// <summary>
    /// In <see cref="LedgerDurability.Journaled"/> mode, how long the writer lets records gather before a batch that would
    /// be less than half of <see cref="MaxBatchSize"/> (a flush or shutdown cuts the wait short); zero: it writes whatever
    /// is queued as soon as the previous batch committed. The acknowledgement waits for the journal, not for this.
    /// Fewer, larger commits cost the writer less per record (docs/benchmarks.md "Session 9").
    /// Internal: set by the bench to measure it.
    /// </summary>
    internal TimeSpan JournaledGather { get; set; } = Recording.LedgerWriter.DefaultGather;

    /// <summary>What the business path waits for before it goes on: see <see cref="LedgerDurability"/>. Default <see cref="LedgerDurability.Journaled"/>.</summary>
    public LedgerDurability Durability { get; set; } = LedgerDurability.Journaled;

    /// <summary>
    /// Closes a published message that no consumer, saga or handler of this application consumes with one SUCCEEDED run
    /// of consumer <c>(no consumer)</c>, so that it neither waits forever nor counts as failed. Turn it on in an
    /// application that consumes its own events; leave it off (the default) when other applications that write to the
    /// same ledger consume what this one publishes (a web front end publishing to workers): their runs are the truth.
    /// Default false.
    /// </summary>
    public bool CloseUnconsumedPublishes { get; set; }

    /// <summary>How long the business path waits for its records to be durable (journaled, or committed in <see cref="LedgerDurability.Committed"/> mode). Default 5 s.</summary>
    [NotNegative]
    [AtMostDays(30)]
    public TimeSpan AcknowledgeTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Records held in memory while the database is slow or down. Default 200,000; further records go to the spool file
    /// (<see cref="SpoolDirectory"/>), and past <see cref="MaxSpoolBytes"/> they are dropped and counted.
    /// </summary>
    [AtLeast(1000)]
    public int QueueCapacity { get; set; } = 200_000;

    /// <summary>
    /// The local directory of JobLog's journal (<see cref="LedgerDurability.Journaled"/>: every record is appended to a
    /// journal segment before its acknowledgement, and the segment is deleted once committed; one locked slot per ledger
    /// and process, replayed by the next process after a crash) and of its spool (records that do not fit in the queue,
    /// replayed in order when the writer has caught up). Put it on a persistent disk: on a machine whose temporary
    /// directory is wiped at boot, or a container without a volume, the journal survives the application's crash but
    /// not the machine's (or the container's) replacement. Default: <c>joblog-&lt;uid&gt;</c> in the system's temporary
    /// directory (per user), created with mode 0700; <c>null</c> drops those records instead. A directory that is a
    /// symbolic link, that another user owns or that others can write is refused with a logged error and never used,
    /// and a spool file that is not this user's regular file is neither replayed nor written.
    /// </summary>
    public string? SpoolDirectory { get; set; } = Recording.SpoolFiles.DefaultDirectory();

    /// <summary>
    /// Whether each group of records appended to the journal is flushed to the disk (<c>fsync</c>) before the
    /// acknowledgements that wait for it are given. Default <c>false</c>: an append is handed to the operating system
    /// (microseconds), which survives the application's crash but not the machine's (a power loss, a kernel panic), nor
    /// an error of the journal's file system that makes the kernel remount it read-only and drop what it had not written
    /// (session 27): the records acknowledged in the last seconds before such an event, not yet committed, are lost.
    /// <c>true</c>: those survive too; every acknowledgement that waits for the journal (every one in
    /// <see cref="LedgerDurability.Journaled"/> mode, those of an outage in <see cref="LedgerDurability.Committed"/> mode) then
    /// waits for the disk's flush as well, shared by every record of the group (docs/benchmarks.md has its cost). Put
    /// <see cref="SpoolDirectory"/> on a persistent disk with it.
    /// </summary>
    public bool FlushJournalToDisk { get; set; }

    /// <summary>Largest spool file. Default 1 GiB; further records are dropped and counted.</summary>
    [AtLeast(1, ErrorMessage = "{0} must be positive (set SpoolDirectory to null to turn the spool off).")]
    public long MaxSpoolBytes { get; set; } = 1L << 30;

    /// <summary>
    /// Record MassTransit's own infrastructure messages (the job service's slot, attempt and status messages, Courier's
    /// routing slip events, ...) as tasks marked <see cref="TaskLog.IsInternal"/>. Default <c>true</c>: they are kept for
    /// diagnosis but left out of the failure rate and of the default lists of the dashboard, the API and the CLI
    /// (<c>internal=true</c> shows them). <c>false</c> records neither them nor their runs.
    /// </summary>
    public bool RecordInternalMessages { get; set; } = true;

    /// <summary>Records per transaction. Default 2,000; 1 to 100,000.</summary>
    [Between(1, 100_000)]
    public int MaxBatchSize { get; set; } = 2000;

    /// <summary>How long the writer waits to fill a batch in <see cref="LedgerDurability.Buffered"/> mode. Default 100 ms.</summary>
    [NotNegative]
    [AtMostDays(30)]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest wait between two attempts to reach a failing database. Default 10 s.</summary>
    [Positive]
    [AtMostDays(1)]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Command timeout of the writer's statements. Default 30 s.</summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// PostgreSQL: how long a session JobLog opens (writer, sweeper, scheduler, heartbeat, partition maintenance, its
    /// contexts) may stay idle inside a transaction before the server ends it (<c>idle_in_transaction_session_timeout</c>,
    /// sent as a startup option). A JobLog process frozen (SIGSTOP, a paused container or VM) or cut off from the network in
    /// the middle of a transaction would otherwise keep its row and advisory locks, and the other processes' writers,
    /// sweepers and partition maintenance wait behind them for as long as it stays so (docs/storage.md). JobLog's own
    /// transactions never wait for anything but the database, so a minute idle means the client is gone. Default 1 minute;
    /// <see cref="TimeSpan.Zero"/> leaves the server's (or the role's) setting. Not applied when the connection string's
    /// <c>Options</c> set <c>idle_in_transaction_session_timeout</c> themselves, nor when the operator set it on the database
    /// or the login role (<c>ALTER DATABASE</c>/<c>ALTER ROLE … SET</c>; JobLog's first session to the server looks), nor
    /// through a pooler that refuses startup options (PgBouncer without <c>options</c> in <c>ignore_startup_parameters</c>:
    /// JobLog then connects without them, warning 1054). Ignored for SQLite.
    /// </summary>
    [NotNegative]
    [AtMostDays(30)]
    public TimeSpan IdleInTransactionTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The machine name stored with every record. Default <see cref="Environment.MachineName"/>.</summary>
    public string Host { get; set; } = Environment.MachineName;

    /// <summary>Application release stored with every task. Default null.</summary>
    public string? Release { get; set; }

    /// <summary>
    /// Whether this process writes a heartbeat, and so is listed among the ledger's hosts (docs/architecture.md#sweeper).
    /// Default true. Turn it off for a one-shot process that records no runs (a command-line tool run by cron, as the
    /// Worker's own commands do): each run of it would otherwise stay on the Hosts page as a stopped host for a week. Runs
    /// such a process records anyway carry no live host: if it dies, only their task's stale limit closes them.
    /// </summary>
    public bool WriteHeartbeat { get; set; } = true;

    /// <summary>How often this process writes its heartbeat to the ledger (docs/architecture.md#sweeper). Default 15 s.</summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// A host whose last heartbeat is older than this is dead: the sweeper closes its ACTIVE runs as EXPIRED. Greater
    /// than <see cref="HeartbeatInterval"/>. Default 2 min.
    /// </summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan HostTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Stale time limit for every task type without its own. Default null (tasks never go stale).</summary>
    public TimeSpan? DefaultStaleTimeLimit { get; set; }

    /// <summary>Time limit for every task type without its own. Default null.</summary>
    public TimeSpan? DefaultTimeLimit { get; set; }

    /// <summary>How long a message may wait in its queue; with a time limit it derives the stale limit. Default null.</summary>
    public TimeSpan? MaxQueueWaitingTime { get; set; }

    /// <summary>Least level of the consumer's log lines captured as a run's output (<see cref="OutputCaptureOptions.Level"/>). Default Information.</summary>
    public Microsoft.Extensions.Logging.LogLevel OutputCaptureLevel
    {
        get => OutputCapture.Level;
        set => OutputCapture.Level = value;
    }

    /// <summary>Which log lines a run's output captures: level and categories, whatever the logging provider.</summary>
    public OutputCaptureOptions OutputCapture { get; } = new();

    /// <summary>Redaction and truncation for every log kind.</summary>
    [ValidateObjectMembers]
    public RedactionOptions Redaction { get; } = new();

    /// <summary>The stale-task sweeper.</summary>
    [ValidateObjectMembers]
    public SweeperOptions Sweeper { get; } = new();

    /// <summary>Daily partitions of the PostgreSQL ledger (off by default; docs/scale.md#partitioning).</summary>
    [ValidateObjectMembers]
    public PartitioningOptions Partitioning { get; } = new();

    /// <summary>Keeping failed messages and retrying them from the ledger.</summary>
    [ValidateObjectMembers]
    public JobLog.Failures.FailureOptions Failures { get; } = new();

    /// <summary>Command logging (<see cref="CommandLogger"/>).</summary>
    public CommandLogOptions Commands { get; } = new();

    /// <summary>Stores the ledger in SQLite (WAL mode).</summary>
    /// <param name="connectionString">For example <c>Data Source=joblog.db</c>.</param>
    public JobLogOptions UseSqlite(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        Provider = LedgerProvider.Sqlite;
        ConnectionString = connectionString;
        return this;
    }

    /// <summary>Stores the ledger in PostgreSQL.</summary>
    /// <param name="connectionString">An Npgsql connection string.</param>
    public JobLogOptions UseNpgsql(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        Provider = LedgerProvider.PostgreSql;
        ConnectionString = connectionString;
        return this;
    }

    /// <summary>Per message type defaults: name, stale and time limits, expiry.</summary>
    public JobLogOptions Task<TMessage>(Action<TaskTypeOptions> configure)
        where TMessage : class
    {
        ArgumentNullException.ThrowIfNull(configure);
        if (!_taskTypes.TryGetValue(typeof(TMessage), out var options))
        {
            options = new TaskTypeOptions();
            _taskTypes[typeof(TMessage)] = options;
        }

        configure(options);
        return this;
    }

    internal TaskTypeOptions? GetTaskType(Type messageType) =>
        _taskTypes.Count == 0 ? null : _taskTypes.GetValueOrDefault(messageType);

    /// <summary>The rules that span two properties or read a text: a database is chosen, a host outlives its heartbeat interval, the spool directory is a path (the others are on the properties).</summary>
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (Provider == LedgerProvider.None || string.IsNullOrWhiteSpace(ConnectionString))
        {
            yield return new ValidationResult(
                "JobLog needs a database: AddJobLog(o => o.UseSqlite(\"Data Source=joblog.db\")) or o.UseNpgsql(connectionString).",
                [nameof(Provider)]);
        }

        if (HostTimeout <= HeartbeatInterval)
        {
            yield return new ValidationResult(
                $"HostTimeout ({HostTimeout}) must be greater than HeartbeatInterval ({HeartbeatInterval}).",
                [nameof(HostTimeout)]);
        }

        // A character no path may hold was .NET's ArgumentException ("Null character in path") out of the host's start.
        if (SpoolDirectory is { } spool && spool.AsSpan().IndexOfAny(Path.GetInvalidPathChars()) >= 0)
        {
            yield return new ValidationResult(
                "SpoolDirectory holds a character no path may hold (a NUL); set a directory, or null to turn the journal and the spool off.",
                [nameof(SpoolDirectory)]);
        }
    }
}

/// <summary>Fails start-up on options that cannot work (generated from the attributes on <see cref="JobLogOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class JobLogOptionsValidator : IValidateOptions<JobLogOptions>;

/// <summary>Per message type task defaults (<c>AddJobLog(o => o.Task&lt;T&gt;(t => ...))</c>).</summary>
public sealed class TaskTypeOptions
{
    /// <summary>Task name. Default: <c>[TaskName]</c> or the type's short name.</summary>
    public string? Name { get; set; }

    /// <summary>Past dispatch + this, an unfinished task is expired by the sweeper.</summary>
    public TimeSpan? StaleTimeLimit { get; set; }

    /// <summary>How long one run may take; with the stale limit it derives <c>Expires</c>.</summary>
    public TimeSpan? TimeLimit { get; set; }

    /// <summary>Message TimeToLive (becomes <c>Expires</c>).</summary>
    public TimeSpan? Expires { get; set; }

    /// <summary>How long a message may wait in its queue; with a time limit it derives the stale limit.</summary>
    public TimeSpan? MaxQueueWaitingTime { get; set; }

    /// <summary>The retry delays the consumer uses; they lengthen the derived stale limit.</summary>
    public IReadOnlyList<TimeSpan>? RetryDelays { get; set; }
}

/// <summary>Per call task options (<c>x.SetTaskOptions(t => ...)</c>); validated when set.</summary>
public sealed class TaskDispatchOptions
{
    /// <summary>Deliver at this time (requires a scheduler on RabbitMQ).</summary>
    public DateTimeOffset? Eta { get; set; }

    /// <summary>Deliver after this delay. Not negative.</summary>
    [NotNegative]
    public TimeSpan? Countdown { get; set; }

    /// <summary>Message TimeToLive: not consumed after dispatch + this. Positive.</summary>
    [Positive]
    public TimeSpan? Expires { get; set; }

    /// <summary>Stale time limit of this dispatch. Positive.</summary>
    [Positive]
    public TimeSpan? StaleTimeLimit { get; set; }

    /// <summary>Time limit of this dispatch. Positive.</summary>
    [Positive]
    public TimeSpan? TimeLimit { get; set; }

    /// <summary>Task name of this dispatch.</summary>
    public string? Name { get; set; }
}

/// <summary>Rejects per call task options out of range (generated from the attributes on <see cref="TaskDispatchOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class TaskDispatchOptionsValidator : IValidateOptions<TaskDispatchOptions>
{
    internal static readonly TaskDispatchOptionsValidator Instance = new();
}

/// <summary>Marks a message type with its task name.</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Interface | AttributeTargets.Struct, Inherited = false)]
public sealed class TaskNameAttribute(string name) : Attribute
{
    /// <summary>The task name.</summary>
    public string Name { get; } = name;
}

/// <summary>The stale-task sweeper (<c>TaskLogSweeper</c>).</summary>
public sealed class SweeperOptions
{
    /// <summary>Run the hosted sweeper. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Time between sweeps. Default 30 s; must be positive.</summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Tasks per statement. Default 1,000; 1 to 100,000.</summary>
    [Between(1, 100_000)]
    public int BatchSize { get; set; } = 1000;

    /// <summary>
    /// PostgreSQL: batches swept at once, each on its own connection, when a sweep has more than one batch to do (a
    /// backlog after an outage). Each expired task is a new row version through every index of the tasks, so one
    /// connection's sweep is bound by one server core (docs/scale.md). Default 4; 1 to 64. SQLite sweeps one batch at
    /// a time (one writer).
    /// </summary>
    [Between(1, 64)]
    public int Parallelism { get; set; } = 4;
}

/// <summary>Redaction and truncation (one policy for every log kind).</summary>
public sealed class RedactionOptions
{
    /// <summary>
    /// Names of headers, query parameters, form fields, JSON properties, command options and structured-log values
    /// whose values are hidden. Compared ignoring case and the separators <c>-</c>, <c>_</c>, <c>.</c> and space;
    /// <c>*</c> matches any run of characters. In free text (errors, output) a name is found with or without a
    /// separator where the name given here has one (<c>*api_key*</c> finds <c>apikey</c>, <c>api_key</c>, <c>api-key</c>).
    /// Default: authorization, authentication and cookie headers (<c>auth</c>), tokens, secrets, passwords (<c>pwd</c>,
    /// <c>pass</c>), API, access and private keys, credentials, signatures (<c>X-Amz-Signature</c>, <c>sig</c>), one-time
    /// codes (<c>otp</c>, <c>totp</c>), the PKCE <c>code_verifier</c>, session ids (<c>X-Session</c>), JWTs, card numbers,
    /// CVCs, PINs and social security numbers (<c>ssn</c>). Not <c>code</c> nor <c>key</c> (an OAuth code, an API key in
    /// <c>?key=</c>): error codes and key/value pairs carry those names too; add them where yours are secrets.
    /// </summary>
    public IList<string> SensitiveNames { get; } =
    [
        "Authorization", "X-Authorization", "Proxy-Authorization", "Authentication", "Cookie", "Cookie2", "Set-Cookie", "auth",
        "*token*", "*secret*", "*password*", "*passwd*", "*pwd*", "pass", "*pass_phrase*",
        "*api_key*", "*access_key*", "*private_key*", "*credential*",
        "*signature*", "sig", "otp", "totp", "hotp", "*otp_code*", "*one_time_code*", "*mfa_code*", "code_verifier",
        "*session_id*", "*sess_id*", "sid", "x_session", "*jwt*", "*card_number*", "cc_number", "*cvv*", "*cvc*", "pin", "ssn",
    ];

    /// <summary>Extra regular expressions over text bodies (form, XML); each group's text, or the whole match, is replaced.</summary>
    public IList<string> BodyPatterns { get; } = [];

    /// <summary>Replacement text. Default <c>[Filtered]</c>.</summary>
    public string Replacement { get; set; } = "[Filtered]";

    /// <summary>The greatest <see cref="MaxBodyLength"/>: every text of a row at it, each character six bytes of JSON
    /// (<c>\u0436</c>), still fits one line of a purge backup (restore reads lines of up to 256 MiB).</summary>
    internal const int MaxBodyLengthLimit = 1_000_000;

    /// <summary>Longest stored body, input, output or error. Default 10,000 characters; 100 to 1,000,000.</summary>
    [Between(100, MaxBodyLengthLimit, ErrorMessage = "{0} must be {1} to {2} characters (a backed-up row with its texts at this length must fit one line of a purge backup).")]
    public int MaxBodyLength { get; set; } = 10_000;

    /// <summary>Longest JSON string value kept when a JSON body is too long. Default 250.</summary>
    [AtLeast(10)]
    public int MaxJsonStringLength { get; set; } = 250;

    /// <summary>
    /// Bytes of an HTTP request or response body read for masking (never the whole body); the stored text is then
    /// bounded by <see cref="MaxBodyLength"/>. Default 65,536; never less than <see cref="MaxBodyLength"/> + 4.
    /// </summary>
    public int MaxCapturedBodyBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// Content types whose response bodies are recorded (other responses store no body). <c>*</c> stands for any
    /// subtype (<c>text/*</c>) or a subtype prefix (<c>application/*+json</c>). Default: text, JSON, XML, forms, JavaScript.
    /// </summary>
    public IList<string> TextContentTypes { get; } =
    [
        "text/*", "application/json", "application/*+json", "application/xml", "application/*+xml",
        "application/x-www-form-urlencoded", "application/javascript", "application/graphql",
    ];
}
