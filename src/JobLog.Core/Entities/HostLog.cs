namespace JobLog;

/// <summary>
/// One process that records to the ledger (a host instance): written at start, refreshed by its heartbeat, marked
/// stopped on a graceful stop. The sweeper closes the ACTIVE runs of an instance whose heartbeat stopped
/// (docs/architecture.md#sweeper).
/// </summary>
public sealed class HostLog
{
    /// <summary>Created when the process starts recording; every run it records carries it (<see cref="TaskRunLog.HostInstanceId"/>).</summary>
    public Guid InstanceId { get; set; }

    /// <summary>The host name (<see cref="JobLogOptions.Host"/>).</summary>
    public string Name { get; set; } = "";

    /// <summary>The process id.</summary>
    public int ProcessId { get; set; }

    /// <summary>The application release (<see cref="JobLogOptions.Release"/>).</summary>
    public string? Release { get; set; }

    /// <summary>When the process started recording.</summary>
    public DateTime StartedAt { get; set; }

    /// <summary>The last heartbeat.</summary>
    public DateTime LastHeartbeat { get; set; }

    /// <summary>When the process stopped gracefully, or null.</summary>
    public DateTime? StoppedAt { get; set; }

    /// <summary>
    /// What the process found waiting in the ledger for a broker none of its buses reaches (scheduled messages overdue,
    /// failure retries asked for), as of its last heartbeat: one line per kind, or null when nothing is stranded
    /// (docs/dashboard.md#hosts). Written by the heartbeat, at most 1,000 characters.
    /// </summary>
    public string? Stranded { get; set; }

    /// <summary>
    /// While the process's writer cannot write to the ledger, why (the exception's type and first line, as the overview's
    /// writer shows it), as of its last heartbeat; null while it writes (docs/dashboard.md#hosts). At most 500 characters.
    /// A heartbeat written while the writer fails shows a partial fault (a table, partition or statement refused while the
    /// hosts table takes the heartbeat); when the whole database refuses, the heartbeat cannot be written either and the
    /// host turns late, then dead.
    /// </summary>
    public string? WriterError { get; set; }

    /// <summary>While <see cref="WriterError"/> is set, since when the writer has been failing (UTC, its process's clock); else null.</summary>
    public DateTime? WriterFailingSince { get; set; }
}
