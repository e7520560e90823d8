using JobLog.Internal;
using Microsoft.Extensions.Logging;

namespace JobLog.Storage;

/// <summary>
/// What JobLog's services that write the ledger on their own (the sweeper, the retention, the partition maintenance, the
/// scheduler's dispatcher, the failure retries) do when the server refuses a write as read-only (PostgreSQL 25006) at a
/// pass: a hot standby or a read-only database that no migration asked (<see cref="JobLogOptions.MigrateOnStartup"/> off),
/// or a primary turned read-only while the process runs. Before session 45 each of them logged the refusal with its stack
/// at every pass, for as long as it lasted. Now the first refusal is said once (warning 1057), the passes pause, and one
/// pass asks again every <see cref="AskAgainEvery"/>; its success (the ledger takes writes again) resumes them all and is
/// said once (1058). A ledger read-only from the start (its connection string, or the start-up migration's refusal) never
/// starts those services (<see cref="LedgerWritingHost{TService}"/>). The heartbeat is not paused: its failures are
/// logged at Debug, and it beats at once when writes are allowed again, so that no other process takes this one for gone.
/// </summary>
internal sealed class LedgerRefusals(JobLogContextFactory contexts, TimeProvider time, ILogger<LedgerRefusals> logger)
{
    /// <summary>How often a paused service tries a pass again while the ledger refuses writes.</summary>
    internal static readonly TimeSpan AskAgainEvery = TimeSpan.FromMinutes(1);

    private readonly Lock _lock = new();
    private long _refusedAt = -1;

    /// <summary>
    /// Whether a service's pass writes now: true unless the ledger refused a write as read-only less than
    /// <see cref="AskAgainEvery"/> ago (then the first caller after that is let through, to ask), or is read-only from the start.
    /// </summary>
    public bool MayWrite()
    {
        if (!contexts.ReadOnly)
        {
            return true;
        }

        lock (_lock)
        {
            if (_refusedAt < 0 || time.GetElapsedTime(_refusedAt) < AskAgainEvery)
            {
                return false;
            }

            _refusedAt = time.GetTimestamp();
            return true;
        }
    }

    /// <summary>
    /// True when <paramref name="exception"/> is the ledger's refusal of a write as read-only: the passes pause (said once a
    /// read-only spell). For a <c>catch … when</c>: any other failure is the caller's to log.
    /// </summary>
    public bool Refused(Exception exception)
    {
        if (!contexts.Database.RefusedAsReadOnly(contexts.ConnectionString, exception))
        {
            return false;
        }

        bool first;
        lock (_lock)
        {
            first = _refusedAt < 0;
            _refusedAt = time.GetTimestamp();
        }

        if (first)
        {
            Log.LedgerRefusedWrites(logger, contexts.Database.Identity(contexts.ConnectionString), AskAgainEvery);
        }

        return true;
    }

    /// <summary>After a pass that succeeded: when the ledger had refused writes, it takes them again, and the passes resume.</summary>
    public void Wrote()
    {
        lock (_lock)
        {
            if (_refusedAt < 0)
            {
                return;
            }

            _refusedAt = -1;
        }

        contexts.Database.TakesWrites(contexts.ConnectionString);
        Log.LedgerTakesWritesAgain(logger, contexts.Database.Identity(contexts.ConnectionString));
    }
}
