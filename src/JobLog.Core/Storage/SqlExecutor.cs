using System.Data.Common;
using System.Text.RegularExpressions;

namespace JobLog.Storage;

/// <summary>
/// Executes <see cref="LedgerPlan"/>s on one open connection, keeping its statements prepared. One per database
/// (<see cref="LedgerDatabase.OpenAsync"/>).
/// </summary>
internal abstract partial class SqlExecutor : IAsyncDisposable
{
    public abstract DbConnection Connection { get; }

    /// <summary>
    /// The connection as opened, for checks that must leave its state alone (<see cref="LedgerDatabase.HasMoved"/>: the
    /// SQLite executor's <see cref="Connection"/> switches the triggers its batches keep off back on, which recompiles its
    /// prepared statements). Null when the database needs none.
    /// </summary>
    internal DbConnection? Opened { get; init; }

    /// <summary>Time spent per phase of <see cref="CommitAsync"/>, when a benchmark asks for it (ticks of <see cref="PhaseClock"/>).</summary>
    internal long[]? PhaseTicks { get; set; }

    /// <summary>The clock of <see cref="PhaseTicks"/>; a benchmark may use the thread's CPU time. Default: the stopwatch.</summary>
    internal Func<long> PhaseClock { get; set; } = System.Diagnostics.Stopwatch.GetTimestamp;

    /// <summary>
    /// When a benchmark sets it (PostgreSQL): each statement of a batch runs in its own round trip, in one transaction,
    /// and this is called after each with the statement's text (the server's cost per statement, read by the caller).
    /// </summary>
    internal Action<string>? StatementProfile { get; set; }

    /// <summary>
    /// With <see cref="StatementProfile"/> (a benchmark's experiment): the text each statement runs with instead of its
    /// own, given its own; the same parameters.
    /// </summary>
    internal Func<string, string>? StatementRewrite { get; set; }

    /// <summary>Writes <paramref name="plan"/> in one transaction: all of it or, on an exception, none of it.</summary>
    public abstract Task CommitAsync(LedgerPlan plan, TimeSpan timeout, CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    /// <summary>The <c>@pN</c> placeholders of the write path's SQL.</summary>
    [GeneratedRegex(@"@p(\d+)")]
    private protected static partial Regex Placeholder();

    private protected void Phase(int phase, ref long started)
    {
        if (PhaseTicks is { } ticks && phase < ticks.Length)
        {
            var now = PhaseClock();
            ticks[phase] += now - started;
            started = now;
        }
    }
}
