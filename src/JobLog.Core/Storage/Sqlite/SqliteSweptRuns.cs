using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// The SQLite sweeper's expiry of the ACTIVE runs of the tasks it expires, without per-row triggers. Every row an UPDATE
/// writes into a table with an UPDATE trigger costs SQLite's trigger machinery about 20 µs per trigger even when the
/// trigger's WHEN is false, and for those runs both of JobLog's are false: the run rollup counts only finished runs
/// (SUCCEEDED, FAILED, RETRIED; an ACTIVE run becoming EXPIRED is neither), and the search index's update trigger leaves
/// the expiry text out (<see cref="SqliteSearch.Swept"/>). Measured on the 1 M ledger: the runs' statement of a batch of
/// 1,000 took 48–62 ms with the triggers and 8–14 ms without (docs/scale.md, "Session 18 (lead)").
/// </summary>
/// <remarks>
/// Only when every UPDATE trigger on the run table is one of those two, word for word as JobLog's migrations write it;
/// any other (an application's, a later migration's) leaves the statement to the triggers, as before. Only the runs
/// without an error text are updated this way: a run that already has one leaves the search index through its trigger
/// (the sweeper's second statement, triggers on). The switch (<c>SQLITE_DBCONFIG_ENABLE_TRIGGER</c>) is this
/// connection's only, inside the sweep's transaction, and always switched back; TEMP triggers fire whatever it says.
/// </remarks>
internal static class SqliteSweptRuns
{
    private const int EnableTrigger = 1003; // SQLITE_DBCONFIG_ENABLE_TRIGGER

    private static readonly (string Name, string[] Scripts)[] Idle =
    [
        (SqliteWriterTriggers.RunTextUpdate, [SqliteWriterTriggers.Normalize(SqliteSearch.Swept), SqliteWriterTriggers.Normalize(SqliteSearch.Distinct)]),
        (SqliteWriterTriggers.RunRollupUpdate, [SqliteWriterTriggers.Normalize(RunRollups.SqliteUp), SqliteWriterTriggers.Normalize(RunRollups.SqliteHoursUp)]),
    ];

    /// <summary>
    /// The connection's triggers switched off until the result is disposed, when every UPDATE trigger on the run table is
    /// one of JobLog's that does nothing for a run the sweeper expires without an error text; otherwise null (triggers on).
    /// </summary>
    public static IDisposable? TriggersOff(SqliteConnection connection)
    {
        var handle = connection.Handle!;
        foreach (var (name, sql) in SqliteWriterTriggers.Triggers(handle, LedgerModel.Runs))
        {
            // An INSERT or DELETE trigger does not fire for an UPDATE; anything that may be an UPDATE one (in whatever case
            // it was written) must be one of the two.
            var normalized = SqliteWriterTriggers.Normalize(sql);
            var begin = normalized.IndexOf(" BEGIN ", StringComparison.OrdinalIgnoreCase);
            var head = begin >= 0 ? normalized[..begin] : normalized;
            if (head.Contains("UPDATE", StringComparison.OrdinalIgnoreCase) && !IsIdle(name, normalized))
            {
                return null;
            }
        }

        Check(handle, raw.sqlite3_db_config(handle, EnableTrigger, 0, out _));
        return new On(handle);
    }

    private static bool IsIdle(string name, string normalized) =>
        normalized.StartsWith($"CREATE TRIGGER \"{name}\" ", StringComparison.Ordinal)
        && Idle.Any(i => i.Name == name && i.Scripts.Any(s => s.Contains(normalized, StringComparison.Ordinal)));

    private static void Check(sqlite3 handle, int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, handle);
        }
    }

    private sealed class On(sqlite3 handle) : IDisposable
    {
        public void Dispose() => Check(handle, raw.sqlite3_db_config(handle, EnableTrigger, 1, out _));
    }
}
