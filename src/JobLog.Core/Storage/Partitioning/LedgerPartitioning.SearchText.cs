using System.Data.Common;
using System.Text.RegularExpressions;
using JobLog.Storage.PostgreSql;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// The search's side table (<see cref="PostgreSqlSearch.Table"/>) on a partitioned ledger: partitioned by the same day key
/// as the tasks (a row carries its task's <see cref="PartitionDay"/>, which the triggers that write it read off the task
/// or run row), with a day partition for each of the tasks' (<c>JobLogSearchText_p20261203</c>, made ahead with theirs),
/// a <c>_k</c> one for each of their kept days, <c>_undated</c> and <c>_default</c>, and its indexes on the partitioned
/// table (each partition its own). A day's drop then drops its partition of the text with the tasks' and runs', where it
/// deleted the day's rows one by one: 5.8 of the 7.9-12.8 s a day of 989,865 tasks took (docs/scale.md "Session 13
/// (tenmpart)"). An unpartitioned ledger keeps the plain table.
/// </summary>
internal static partial class LedgerPartitioning
{
    private const string SearchText = PostgreSqlSearch.Table;

    private const string SearchTextKindSql =
        "SELECT COALESCE((SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass('\"" + SearchText + "\"')), '')";

    /// <summary>
    /// Partitions a partitioned ledger's side table where it is still a plain table (start-up, after the conversion of the
    /// tasks; a ledger partitioned before session 14, or one whose search index was just turned on), in one transaction that
    /// holds the writers off: a partitioned copy with the day partitions of the tasks, its rows with their task's day, its
    /// indexes built on it, the trigger functions that write the day. Without a time limit (at 1 M tasks it copies a
    /// million texts and builds their trigram index; docs/scale.md "Session 14 (searchpart)").
    /// </summary>
    /// <returns>Whether it was partitioned here.</returns>
    public static async Task<bool> PartitionSearchTextAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        if (await ScalarAsync<string>(connection, SearchTextKindSql, cancellationToken).ConfigureAwait(false) != "r"
            || !await IsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // The parents ONLY (each name its own ONLY): the writers it holds off write through them (the side table's triggers
        // fire for those writes), and nothing below takes a partition of theirs; another day's partition held by an autovacuum
        // is not this lock's to wait for.
        await ExecAsync(connection, LockParentsOnly([LedgerModel.Tasks, LedgerModel.Runs], "SHARE ROW EXCLUSIVE") + $"; LOCK TABLE {Q(SearchText)} IN ACCESS EXCLUSIVE MODE",
            cancellationToken).ConfigureAwait(false);
        if (await ScalarAsync<string>(connection, SearchTextKindSql, cancellationToken).ConfigureAwait(false) != "r")
        {
            return false;
        }

        var trigram = await ScalarAsync<bool>(connection,
            $"SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = '{PostgreSqlSearch.TrigramIndex}')", cancellationToken).ConfigureAwait(false);
        var staged = SearchText + "_partitioned";
        var days = (await DaysAsync(connection, cancellationToken).ConfigureAwait(false)).GetValueOrDefault(LedgerModel.Tasks, []);
        var kept = (await DaysAsync(connection, cancellationToken, kept: true).ConfigureAwait(false)).GetValueOrDefault(LedgerModel.Tasks, []);
        var sql = $"""
            CREATE TABLE {Q(staged)} ("TaskId" uuid NOT NULL, "IsError" boolean NOT NULL, "Text" text NOT NULL, {Key} integer NOT NULL) PARTITION BY RANGE ({Key});
            {CreateFixedPartitions(SearchText, staged)}
            {string.Concat(days.Order().Select(d => CreateDay(SearchText, staged, d) + ";\n"))}
            {string.Concat(kept.Order().Select(d => $"CREATE TABLE {Q(KeptName(SearchText, d))} PARTITION OF {Q(staged)} FOR VALUES FROM ({d}) TO ({d + 1});\n"))}
            INSERT INTO {Q(staged)} SELECT "TaskId", "IsError", "Text", {PartitionDay.Function}("TaskId") FROM {Q(SearchText)};
            DROP TABLE {Q(SearchText)};
            ALTER TABLE {Q(staged)} RENAME TO {Q(SearchText)};
            CREATE INDEX "{PostgreSqlSearch.TaskIdIndex}" ON {Q(SearchText)} ("TaskId");
            {(trigram ? PostgreSqlSearch.CreateTrigramIndex : "")}
            {string.Join(";\n", PostgreSqlSearch.FunctionDefinitions(keyed: true))};
            ANALYZE {Q(SearchText)};
            """;
        await ExecAsync(connection, sql, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Replaces a partitioned ledger's <see cref="PartitionDay.Function"/> by the current form where it is the one before
    /// session 14 (the same keys, ten times faster: <see cref="PartitionDay.SqlFunction"/>).
    /// </summary>
    /// <returns>Whether it was replaced.</returns>
    public static async Task<bool> EnsureDayFunctionAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        if (await ScalarAsync<bool>(connection, PartitionDay.IsCurrentSql, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        await ExecAsync(connection, PartitionDay.SqlFunction, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>The side table's day partitions (<paramref name="kept"/>: its <c>_k</c> ones), or null when it is not partitioned.</summary>
    private static async Task<HashSet<int>?> SearchTextDaysAsync(DbConnection connection, bool kept, CancellationToken cancellationToken) =>
        await ScalarAsync<string>(connection, SearchTextKindSql, cancellationToken).ConfigureAwait(false) == "p"
            ? (await PartitionDaysAsync(connection, [SearchText], SearchTextDayPartition(), kept, cancellationToken).ConfigureAwait(false)).GetValueOrDefault(SearchText, [])
            : null;

    /// <summary>
    /// The side table's part of a day's drop (<see cref="DropExpiredAsync"/>; the day's tasks partition is
    /// <paramref name="tasks"/>, the rows to keep in <c>joblog_keep_tasks</c>): <c>Drop</c> runs before the tasks' partition
    /// goes, <c>Kept</c> after the kept tasks' <c>_k</c> partitions are made. Partitioned by day: the day's partition
    /// detached and dropped, the kept tasks' text attached as the day's <c>_k</c> partition (as the tasks' kept rows:
    /// filled without indexes, then attached). That text is made from the kept task and run rows (<c>joblog_keep_tasks</c>,
    /// <c>joblog_keep_runs</c>, already read) as the triggers and <see cref="PostgreSqlSearch.Refill"/> make it
    /// (<see cref="PostgreSqlSearch.RowsOf"/>), not looked up in the day's partition: at 10 M those 10,000 lookups read
    /// 0.7–1.3 s of the locked transaction (docs/scale.md "Session 17 (daydrop)"). Otherwise (a plain side table, or its day partition missing) the
    /// day's text deleted but the kept tasks'. None without a side table (the search index off).
    /// </summary>
    /// <c>kind</c> is the side table's <c>relkind</c> (<c>p</c> partitioned, <c>r</c> plain, empty: none), <c>dayPresent</c> whether
    /// it has the day's partition (both read with the rest of the day's state under its lock, <see cref="DropStateAsync"/>).
    private static (string Drop, string Kept) SearchTextDrop(string tasks, int day, bool keep, string kind, bool dayPresent)
    {
        if (kind == "")
        {
            return ("", "");
        }

        var partition = SearchText + "_" + PartitionDay.Suffix(day);
        if (kind != "p" || !dayPresent)
        {
            var sameDay = kind == "p" ? $" AND s.{Key} = {day}" : "";
            return ($"DELETE FROM {Q(SearchText)} s USING {tasks} t WHERE s.\"TaskId\" = t.\"Id\"{sameDay} AND NOT EXISTS (SELECT 1 FROM joblog_keep_tasks k WHERE k.\"Id\" = t.\"Id\");\n", "");
        }

        var keptName = Q(KeptName(SearchText, day));
        var kept = keep
            ? $"""
              CREATE TABLE {keptName} (LIKE {Q(SearchText)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
              {PostgreSqlSearch.RowsOf("joblog_keep_tasks", "joblog_keep_runs", keyed: true, into: keptName)};
              ALTER TABLE {Q(SearchText)} ATTACH PARTITION {keptName} FOR VALUES FROM ({day}) TO ({day + 1});

              """
            : "";
        return (Detach(SearchText, partition, day), kept);
    }

    /// <summary>The side table's <c>_k</c> partition of <paramref name="day"/>, dropped with the tasks' when theirs is empty (<see cref="DropEmptyKeptAsync"/>).</summary>
    private static async Task DropKeptSearchTextAsync(DbConnection connection, int day, CancellationToken cancellationToken)
    {
        var kept = KeptName(SearchText, day);
        if (await ScalarAsync<bool>(connection, $"SELECT to_regclass('{Q(kept)}') IS NOT NULL", cancellationToken).ConfigureAwait(false))
        {
            await ExecAsync(connection, $"ALTER TABLE {Q(SearchText)} DETACH PARTITION {Q(kept)}; DROP TABLE {Q(kept)}", cancellationToken).ConfigureAwait(false);
        }
    }

    [GeneratedRegex("^(JobLogSearchText)_([pk])([0-9]{8})$", RegexOptions.CultureInvariant)]
    private static partial Regex SearchTextDayPartition();
}
