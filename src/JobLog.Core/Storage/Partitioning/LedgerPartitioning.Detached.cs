using System.Data.Common;
using System.Text.RegularExpressions;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// A dropped day's partitions leave the ledger in the day's locked transaction (<c>DETACH</c>, then renamed
/// <c>_x</c>: <c>JobLogTasks_x20261203</c>) and are dropped after its commit, in a transaction of their own that locks
/// only them. A <c>DROP TABLE</c> frees its files when its transaction commits: at 10 M (a day of 1.7 GB of tasks,
/// runs and text) the three drops took 1.4–1.9 s, which the ledger's tables spent locked while they were the day's
/// transaction's (docs/scale.md "Session 17 (daydrop)"). A detached table left by a process stopped between the two commits is
/// dropped by the next drop (<see cref="DropDetachedAsync(DbConnection, CancellationToken, IReadOnlyCollection{string})"/>).
/// </summary>
internal static partial class LedgerPartitioning
{
    /// <summary>
    /// The statements, for the day's locked transaction, that take <paramref name="partition"/> out of
    /// <paramref name="parent"/> and name it <see cref="DetachedName"/>; its drop is the caller's after the commit.
    /// </summary>
    private static string Detach(string parent, string partition, int day) =>
        $"ALTER TABLE {Q(parent)} DETACH PARTITION {Q(partition)}; ALTER TABLE {Q(partition)} RENAME TO {Q(DetachedName(parent, day))};\n";

    /// <summary>The name of a dropped day's partition of <paramref name="table"/> between its detach and its drop.</summary>
    internal static string DetachedName(string table, int day) => table + "_x" + PartitionDay.Suffix(day)[1..];

    /// <summary>
    /// Drops the detached tables <paramref name="names"/> (those that exist) in one statement: one commit (its WAL flush)
    /// for a day's three, not three; each is a table of its own that nothing else locks.
    /// </summary>
    private static async Task DropDetachedAsync(DbConnection connection, IEnumerable<string> names, CancellationToken cancellationToken)
    {
        var list = names.Select(n => Q(n)).ToList();
        if (list.Count > 0)
        {
            // Another process's leftover pass may drop one first: IF EXISTS, and a table dropped while this one waited
            // for its lock is looked up again and found gone.
            await ExecAsync(connection, $"DROP TABLE IF EXISTS {string.Join(", ", list)}", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Drops the detached day partitions (<see cref="DetachedName"/>) a drop left behind: it stopped after its day's commit
    /// and before their drop. Only tables that are no partition and carry the name of one of the ledger's partitioned
    /// tables (of <paramref name="of"/> only, when given: a kind's drop leaves another kind's, which a retention's pass leaves
    /// for the partition pass); one still being detached belongs to an uncommitted transaction and is not seen.
    /// </summary>
    internal static async Task DropDetachedAsync(DbConnection connection, CancellationToken cancellationToken, IReadOnlyCollection<string>? of = null)
    {
        var names = await ListAsync<string>(connection,
            "SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND NOT c.relispartition " +
            "AND c.relname ~ '_x[0-9]{8}$'", cancellationToken).ConfigureAwait(false);
        await DropDetachedAsync(connection, names.Where(n => DetachedPartition().Match(n) is { Success: true } m && IsPartitioned(m.Groups[1].Value)
            && (of is null || of.Contains(m.Groups[1].Value))), cancellationToken)
            .ConfigureAwait(false);
    }

    private static bool IsPartitioned(string table) =>
        Tables.Any(t => t.Table == table) || LogTables.Any(t => t.Table == table) || table == SearchText;

    [GeneratedRegex("^(JobLog[A-Za-z]+)_x([0-9]{8})$", RegexOptions.CultureInvariant)]
    private static partial Regex DetachedPartition();
}
