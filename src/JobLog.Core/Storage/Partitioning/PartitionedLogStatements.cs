using System.Collections.Concurrent;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// The write path's upserts of requests, related objects and commands on a ledger whose logs are partitioned
/// (<see cref="LedgerPartitioning.LogTables"/>): the planner's statement (<see cref="OnConflictSql"/>: <c>INSERT INTO
/// "table" (columns) VALUES (@p0, …) ON CONFLICT ("Id") …</c>) with the partition key added as one more column, computed
/// in the statement from the parameter of the id it is derived from (<see cref="PartitionDay.Function"/>), and in the
/// conflict target, so the start's and the end's upserts of one request meet on one row. Other statements are returned
/// as they are.
/// </summary>
internal static class PartitionedLogStatements
{
    private const string Key = "\"" + PartitionDay.Column + "\"";
    private const string Values = ") VALUES (";
    private const string Conflict = ") ON CONFLICT (\"Id\") ";

    private static readonly ConcurrentDictionary<string, string> s_keyed = new(StringComparer.Ordinal);

    /// <summary><paramref name="sql"/> with the partition key, when it is an upsert of a partitioned log table.</summary>
    /// <exception cref="InvalidOperationException">An insert into a log table that is not of the planner's shape.</exception>
    public static string Keyed(string sql) => s_keyed.GetOrAdd(sql, Rewrite);

    private static string Rewrite(string sql)
    {
        foreach (var (table, keyOf, _) in LedgerPartitioning.LogTables)
        {
            var head = "INSERT INTO \"" + table + "\" (";
            if (!sql.StartsWith(head, StringComparison.Ordinal))
            {
                continue;
            }

            var values = sql.IndexOf(Values, StringComparison.Ordinal);
            var conflict = values < 0 ? -1 : sql.IndexOf(Conflict, values, StringComparison.Ordinal);
            var column = values < 0 ? -1 : Array.IndexOf(sql[head.Length..values].Split(", "), "\"" + keyOf + "\"");
            if (conflict < 0 || column < 0)
            {
                throw new InvalidOperationException($"The write path's insert into {table} changed shape; update {nameof(PartitionedLogStatements)}: {sql}");
            }

            var parameter = sql[(values + Values.Length)..conflict].Split(", ")[column];
            return sql[..values] + ", " + Key + sql[values..conflict] + $", {PartitionDay.Function}({parameter})" +
                   ") ON CONFLICT (\"Id\", " + Key + ") " + sql[(conflict + Conflict.Length)..];
        }

        return sql;
    }
}
