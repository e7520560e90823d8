using JobLog.Failures;
using JobLog.Storage.Partitioning;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Querying;

/// <summary>The open failures, grouped (see <c>docs/architecture.md#reading</c>).</summary>
public sealed partial class LedgerQueries
{
    /// <summary>
    /// The most open failures one grouping reads (newest first): 10,000. Grouping by exception reads the error text, so
    /// the groups are computed from the newest failures only when there are more (<see cref="FailureGroups.Truncated"/>).
    /// </summary>
    public const int MaxFailuresScanned = 10_000;

    /// <summary>The error text read per failure: enough for the exception and the first frames.</summary>
    private const int ErrorScanLength = 4000;

    private const int ErrorPreviewLength = 1000;

    /// <summary>
    /// True to group from the failures' text on every read, as before the stored groups (<see cref="FailureGroupColumns"/>):
    /// the tests' reference for what the stored groups must give.
    /// </summary>
    internal bool GroupsFromText { get; init; }

    /// <summary>The most open failures one fill of their groups reads at once (<see cref="FillFailureGroupsAsync(CancellationToken)"/>).</summary>
    private const int FillBatch = 1000;

    /// <summary>
    /// The fewest groups one fill writes into a table (PostgreSQL) for its group columns' statistics to be taken again
    /// after it (<see cref="FailureGroupColumns.Analyze"/>): a bulk fill, never the few failures written between two reads.
    /// </summary>
    internal int AnalyzeAfterFilled { get; set; } = 500;

    /// <summary>The open failures (failed, not resolved) matching a filter, grouped by its <c>by</c>; most failures first.</summary>
    /// <param name="f">The filter (see <see cref="FailureFilter.Parse"/>); its limit bounds the groups.</param>
    /// <param name="now">The current time (UTC), for the trend.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The groups.</returns>
    public Task<FailureGroups> FailureGroupsAsync(FailureFilter f, DateTime now, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(f);
        return OnceMoreUnpreparedAsync(() => ReadFailureGroupsAsync(f, now, ct));
    }

    private async Task<FailureGroups> ReadFailureGroupsAsync(FailureFilter f, DateTime now, CancellationToken ct)
    {
        var partitioned = await _database.IsPartitionedAsync(_db, ct).ConfigureAwait(false);
        var start = now.AddHours(-24);
        if (!GroupsFromText && f.Search is null && await FillFailureGroupsAsync(partitioned, ct).ConfigureAwait(false))
        {
            return await IndexedFailureGroupsAsync(f, start, partitioned, ct).ConfigureAwait(false);
        }

        var (failures, truncated) = await OpenFailuresAsync(f, partitioned, ct).ConfigureAwait(false);
        var groups = failures.GroupBy(x => x.GroupId).Select(g =>
        {
            var newest = g.First();
            return new FailureGroup(g.Key, f.By, newest.Key, newest.Signature.ExceptionType, g.Count(), g.Min(x => x.FailedAt),
                newest.FailedAt, newest.TaskId, Preview(newest.Error), Trend(g.Select(x => x.FailedAt), start));
        }).OrderByDescending(g => g.Count).ThenByDescending(g => g.LastSeen).ThenBy(g => g.Id, StringComparer.Ordinal).Take(f.Limit).ToList();
        return new FailureGroups(groups, failures.Count, truncated);
    }

    /// <summary>One page of the open failures matching a filter (e.g. one group's, with <c>group</c>), newest first.</summary>
    /// <param name="f">The filter (see <see cref="FailureFilter.Parse"/>).</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The page.</returns>
    public Task<Page<FailureRow>> FailuresAsync(FailureFilter f, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(f);
        return OnceMoreUnpreparedAsync(() => ReadFailuresAsync(f, ct));
    }

    private async Task<Page<FailureRow>> ReadFailuresAsync(FailureFilter f, CancellationToken ct)
    {
        var partitioned = await _database.IsPartitionedAsync(_db, ct).ConfigureAwait(false);
        if (!GroupsFromText && f.Search is null && await FillFailureGroupsAsync(partitioned, ct).ConfigureAwait(false))
        {
            // One range of the group's index (or of the open failures' by time, without a group), from the cursor on.
            var q = IndexedOpenFailures(f, partitioned);
            if (f.After is { } c)
            {
                q = q.Where(t => (t.Stop ?? t.DispatchedAt) <= c.At && ((t.Stop ?? t.DispatchedAt) < c.At || t.Id.CompareTo(c.Id) < 0));
            }

            var read = await FailureReads(Newest(q).Take(f.Limit + 1), partitioned).ToListAsync(ct).ConfigureAwait(false);
            var rows = read.Select(x => Open(x, f.By))
                .Select(x => new FailureRow(x.TaskId, x.Name, x.Queue, x.FailedAt, x.GroupId, x.Signature.ToString(), Preview(x.Error)))
                .ToList();
            return ToPage(rows, f.Limit, r => new Cursor(r.FailedAt, r.TaskId));
        }

        var (failures, _) = await OpenFailuresAsync(f, partitioned, ct).ConfigureAwait(false);
        IEnumerable<OpenFailure> all = failures;
        if (f.After is { } after)
        {
            all = all.Where(x => x.FailedAt < after.At || (x.FailedAt == after.At && x.TaskId.CompareTo(after.Id) < 0));
        }

        var page = all.Take(f.Limit + 1)
            .Select(x => new FailureRow(x.TaskId, x.Name, x.Queue, x.FailedAt, x.GroupId, x.Signature.ToString(), Preview(x.Error)))
            .ToList();
        return ToPage(page, f.Limit, r => new Cursor(r.FailedAt, r.TaskId));
    }

    /// <summary>
    /// The task ids of the open failures matching a filter (a whole group with <c>group</c>, or everything the filter
    /// matches), newest first, at most <paramref name="max"/>: what a retry or resolve of "all of these" acts on.
    /// </summary>
    /// <param name="f">The filter; its <c>cursor</c> and <c>limit</c> are ignored.</param>
    /// <param name="max">The most ids returned (1 to <see cref="MaxFailuresScanned"/>).</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The task ids.</returns>
    public Task<IReadOnlyList<Guid>> OpenFailureIdsAsync(FailureFilter f, int max, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(f);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(max, MaxFailuresScanned);
        return OnceMoreUnpreparedAsync(() => ReadOpenFailureIdsAsync(f, max, ct));
    }

    private async Task<IReadOnlyList<Guid>> ReadOpenFailureIdsAsync(FailureFilter f, int max, CancellationToken ct)
    {
        var partitioned = await _database.IsPartitionedAsync(_db, ct).ConfigureAwait(false);
        if (!GroupsFromText && f.Search is null && await FillFailureGroupsAsync(partitioned, ct).ConfigureAwait(false))
        {
            return await Newest(IndexedOpenFailures(f, partitioned)).Take(max).Select(t => t.Id).ToListAsync(ct).ConfigureAwait(false);
        }

        var (failures, _) = await OpenFailuresAsync(f with { After = null }, partitioned, ct).ConfigureAwait(false);
        return failures.Take(max).Select(x => x.TaskId).ToList();
    }

    /// <summary>
    /// Computes the groups of the open failures that have none yet, or whose failure time changed since theirs were
    /// computed (<see cref="FailureGroupColumns"/>), and writes them; at start-up (a ledger written before the columns
    /// existed) and before each failures read (the failures written since the last one).
    /// </summary>
    /// <param name="ct">Cancels between batches (written batches stay).</param>
    /// <returns>True when every open failure has its groups (false: one could not be written, e.g. it changed meanwhile).</returns>
    internal Task<bool> FillFailureGroupsAsync(CancellationToken ct) =>
        OnceMoreUnpreparedAsync(async () => await FillFailureGroupsAsync(await _database.IsPartitionedAsync(_db, ct).ConfigureAwait(false), ct).ConfigureAwait(false));

    /// <summary>
    /// Runs a read, and once more when it failed because a pooler lost a statement kept prepared on the server
    /// (<see cref="Storage.PostgreSql.ServerPreparation"/>: from then on nothing is prepared on that database).
    /// </summary>
    private async Task<T> OnceMoreUnpreparedAsync<T>(Func<Task<T>> read)
    {
        try
        {
            return await read().ConfigureAwait(false);
        }
        catch (Npgsql.PostgresException ex) when (Storage.PostgreSql.ServerPreparation.IsLost(ex) && _db.Database.GetConnectionString() is { } connectionString)
        {
            Storage.PostgreSql.ServerPreparation.TurnOff(connectionString);
            return await read().ConfigureAwait(false);
        }
    }

    private async Task<bool> FillFailureGroupsAsync(bool partitioned, CancellationToken ct)
    {
        var filled = new Dictionary<string, int>(StringComparer.Ordinal);
        var done = await FillFailureGroupBatchesAsync(partitioned, filled, ct).ConfigureAwait(false);
        foreach (var (table, count) in filled)
        {
            if (count >= AnalyzeAfterFilled)
            {
                await _db.Database.ExecuteSqlRawAsync(FailureGroupColumns.Analyze(table), ct).ConfigureAwait(false);
            }
        }

        return done;
    }

    /// <summary>The fill's batches; <paramref name="filled"/> counts the groups written by table (PostgreSQL).</summary>
    private async Task<bool> FillFailureGroupBatchesAsync(bool partitioned, Dictionary<string, int> filled, CancellationToken ct)
    {
        // Prepared on PostgreSQL: without parameters its plan is the generic one from the first execution (at 10 M tasks
        // 35–89 ms of planning over every day partition on each read otherwise).
        var select = Storage.PostgreSql.PreparedReads.Comment + FailureGroupColumns.SelectUnfilled(_database, FillBatch);
        while (true)
        {
            var ids = await _db.Database.SqlQueryRaw<Guid>(select).ToListAsync(ct).ConfigureAwait(false);
            if (ids.Count == 0)
            {
                return true;
            }

            if (_db.Database.GetConnectionString() is { } connectionString && _database.IsReadOnly(connectionString))
            {
                // A ledger opened read-only: its groups cannot be written, the pages read the failures' text instead.
                return false;
            }

            var read = await FailureReads(_db.TaskLogs.AsNoTracking().Where(t => ids.Contains(t.Id)), partitioned).ToListAsync(ct).ConfigureAwait(false);
            var written = 0;
            await using var transaction = await _db.Database.BeginTransactionAsync(ct).ConfigureAwait(false);
            var connection = _db.Database.GetDbConnection();
            await using var command = connection.CreateCommand();
            command.Transaction = Microsoft.EntityFrameworkCore.Storage.DbContextTransactionExtensions.GetDbTransaction(transaction);
            var parameters = Enumerable.Range(0, 5).Select(i =>
            {
                var p = command.CreateParameter();
                p.ParameterName = "@p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                command.Parameters.Add(p);
                return p;
            }).ToArray();
            var groups = read.Select(x => (x, Groups(x))).ToList();
            if (_db.Database.IsNpgsql())
            {
                await _db.Database.ExecuteSqlRawAsync(FailureGroupColumns.FillLockTimeout, ct).ConfigureAwait(false);
                command.CommandText = FailureGroupColumns.FillMany;
                parameters[0].Value = groups.Select(g => g.x.Id).ToArray();
                parameters[1].Value = groups.Select(g => g.Item2.Exception).ToArray();
                parameters[2].Value = groups.Select(g => g.Item2.Type).ToArray();
                parameters[3].Value = groups.Select(g => g.Item2.Queue).ToArray();
                parameters[4].Value = groups.Select(g => Utc(g.x.FailedAt)).ToArray();
                try
                {
                    await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        var table = reader.GetString(0);
                        filled[table] = filled.GetValueOrDefault(table) + 1;
                        written++;
                    }
                }
                catch (Npgsql.PostgresException ex) when (ex.SqlState is Npgsql.PostgresErrorCodes.LockNotAvailable or Npgsql.PostgresErrorCodes.DeadlockDetected)
                {
                    // A writer's or the sweeper's batch holds the counts (or a deadlock check ran first, on a server whose
                    // deadlock_timeout is shorter): this batch is given up and filled by a later read.
                    return false;
                }
            }
            else
            {
                command.CommandText = FailureGroupColumns.Fill;
                foreach (var (x, (exception, type, queue, _)) in groups)
                {
                    parameters[0].Value = _database.ToDb(x.Id);
                    parameters[1].Value = exception;
                    parameters[2].Value = type;
                    parameters[3].Value = queue;
                    parameters[4].Value = _database.ToDb(Utc(x.FailedAt));
                    written += await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                }
            }

            await transaction.CommitAsync(ct).ConfigureAwait(false);
            if (written < ids.Count)
            {
                // A failure that changed between the read and the write (or a time its database writes unlike this one):
                // filled by the next read; meanwhile the pages read the failures' text, as before the columns.
                return false;
            }
        }
    }

    /// <summary>The groups from the index of the filter's grouping: one aggregation, then the shown groups' newest failures and last 24 h.</summary>
    private async Task<FailureGroups> IndexedFailureGroupsAsync(FailureFilter f, DateTime start, bool partitioned, CancellationToken ct)
    {
        if (_db.Database.IsNpgsql() && await PreparedRolledUpGroupsAsync(f, start, partitioned, ct).ConfigureAwait(false) is { } prepared)
        {
            return prepared;
        }

        var column = FailureGroupColumns.Of(f.By);
        var q = IndexedOpenFailures(f with { Group = null }, partitioned);
        var counts = await RolledUpGroupCountsAsync(f, partitioned, ct).ConfigureAwait(false)
            ?? await GroupCounts(f, partitioned).ToListAsync(ct).ConfigureAwait(false);
        var matching = counts.Where(g => g.Id is not null).ToList();
        var shown = matching
            .OrderByDescending(g => g.Count).ThenByDescending(g => g.Last).ThenBy(g => g.Id, StringComparer.Ordinal).Take(f.Limit).ToList();
        if (shown.Count == 0)
        {
            return new FailureGroups([], matching.Sum(g => g.Count), Truncated: false);
        }

        // Each shown group's newest failure: the rows at its last failure time (the time index, no group term: a term on
        // the nullable group column becomes an OR that no index serves), newest first as the pages order them.
        var lasts = shown.Select(g => g.Last).Distinct().ToList();
        var newest = await FailureReads(Newest(q.Where(t => lasts.Contains(t.Stop ?? t.DispatchedAt))), partitioned).ToListAsync(ct).ConfigureAwait(false);
        var samples = new Dictionary<string, OpenFailure>(StringComparer.Ordinal);
        foreach (var x in newest)
        {
            var open = Open(x, f.By);
            samples.TryAdd(open.GroupId, open);
        }

        // The last 24 hours of the shown groups, each its range of the grouping's index: the failures of one day, not of all
        // time. (The open failures' time index served it before: on a day partition whose failure times have no
        // statistics, PostgreSQL's guess of a third of them sent it to the (DispatchedAt) index of open failures instead,
        // every open failure of every day read: 10 M tasks, 98–320 ms.)
        var shownIds = shown.Select(g => g.Id!).ToList();
        var recent = await IndexedOpenFailures(f, partitioned).Where(t => shownIds.Contains(EF.Property<string>(t, column)) && (t.Stop ?? t.DispatchedAt) >= start)
            .Select(t => new { Id = EF.Property<string?>(t, column), At = t.Stop ?? t.DispatchedAt })
            .ToListAsync(ct).ConfigureAwait(false);
        var groups = new List<FailureGroup>(shown.Count);
        foreach (var g in shown)
        {
            if (!samples.TryGetValue(g.Id!, out var sample))
            {
                // Its newest failure changed group since the aggregation (a failure written meanwhile): as if it had not been there.
                continue;
            }

            groups.Add(new FailureGroup(g.Id!, f.By, sample.Key, sample.Signature.ExceptionType, g.Count, Utc(g.First), Utc(g.Last), sample.TaskId,
                Preview(sample.Error), Trend(recent.Where(r => r.Id == g.Id).Select(r => Utc(r.At)), start)));
        }

        return new FailureGroups(groups, matching.Sum(g => g.Count), Truncated: false);
    }

    /// <summary>
    /// Each group's count, first and last failure time, from the grouping's index. With the filter's <c>group</c> (one
    /// group's summary: its page's header) only that group's range of the index is counted, not every open failure.
    /// </summary>
    private IQueryable<GroupCount> GroupCounts(FailureFilter f, bool partitioned)
    {
        var column = FailureGroupColumns.Of(f.By);
        return IndexedOpenFailures(f, partitioned).GroupBy(t => EF.Property<string?>(t, column))
            .Select(g => new GroupCount(g.Key, g.Count(), g.Min(t => t.Stop ?? t.DispatchedAt), g.Max(t => t.Stop ?? t.DispatchedAt)));
    }

    /// <summary>
    /// The unfiltered list's groups (the dashboard's default: no name, queue, time or group) from the counts kept per group
    /// (<see cref="Storage.FailureGroupRollup"/>), not from every open failure: the count of each group, and the first and
    /// last failure times of the groups the list can show (those the limit keeps by count, and those tied with the last
    /// of them, whose last time decides), each the end of its group's range of the grouping's index. Null for a filtered
    /// list, or when so many groups tie that one aggregation reads less.
    /// </summary>
    private async Task<List<GroupCount>?> RolledUpGroupCountsAsync(FailureFilter f, bool partitioned, CancellationToken ct)
    {
        if (!IsUnfiltered(f))
        {
            return null;
        }

        var counts = await KeptCountsAsync(f, ct).ConfigureAwait(false);
        if (Candidates(counts, f.Limit) is not { } candidates)
        {
            return null;
        }

        var column = FailureGroupColumns.Of(f.By);
        var open = IndexedOpenFailures(f, partitioned);
        var ends = await _db.Set<Storage.FailureGroupCount>().Where(c => c.Grouping == f.By && candidates.Contains(c.GroupId))
            .Select(c => c.GroupId).Distinct()
            .Select(id => new
            {
                Id = id,
                First = open.Where(t => EF.Property<string>(t, column) == id).Min(t => (DateTime?)(t.Stop ?? t.DispatchedAt)),
                Last = open.Where(t => EF.Property<string>(t, column) == id).Max(t => (DateTime?)(t.Stop ?? t.DispatchedAt)),
            })
            .ToDictionaryAsync(e => e.Id, StringComparer.Ordinal, ct).ConfigureAwait(false);
        // A group the list cannot show, or one emptied since its count was read (no sample: left out, as on the other path),
        // has no times.
        return counts.Select(c => ends.TryGetValue(c.Id, out var e) && e.First is { } first && e.Last is { } last
                ? new GroupCount(c.Id, checked((int)c.Count), first, last)
                : new GroupCount(c.Id, checked((int)c.Count), DateTime.MinValue, DateTime.MinValue))
            .ToList();
    }

    private static bool IsUnfiltered(FailureFilter f) => f is { Name: null, Queue: null, From: null, To: null, Group: null };

    /// <summary>
    /// The counts kept per group (<see cref="Storage.FailureGroupRollup"/>) of the filter's grouping and <c>internal</c>
    /// (and its <c>group</c>'s only, with one), non-zero.
    /// </summary>
    private async Task<List<(string Id, long Count)>> KeptCountsAsync(FailureFilter f, CancellationToken ct)
    {
        var rows = _db.Set<Storage.FailureGroupCount>().AsNoTracking().TagWith(Storage.PostgreSql.PreparedReads.Tag)
            .Where(c => c.Grouping == f.By && c.Count > 0);
        rows = f.Internal switch
        {
            InternalTasks.Hide => rows.Where(c => !c.IsInternal),
            InternalTasks.Only => rows.Where(c => c.IsInternal),
            _ => rows,
        };
        if (f.Group is { } group)
        {
            rows = rows.Where(c => c.GroupId == group);
        }

        return (await rows.Select(c => new { c.GroupId, c.Count }).ToListAsync(ct).ConfigureAwait(false))
            .GroupBy(c => c.GroupId, StringComparer.Ordinal).Select(g => (Id: g.Key, Count: g.Sum(c => c.Count))).ToList();
    }

    /// <summary>
    /// The groups the list can show: the <paramref name="limit"/> largest counts and every group tied with the smallest of
    /// them (their last failure time decides); null when more than <c>2 × limit + 10</c> (one aggregation reads less).
    /// </summary>
    private static List<string>? Candidates(List<(string Id, long Count)> counts, int limit)
    {
        var byCount = counts.OrderByDescending(c => c.Count).ToList();
        var least = byCount.Count > limit ? byCount[limit - 1].Count : 0;
        var candidates = byCount.TakeWhile(c => c.Count >= least).Select(c => c.Id).ToList();
        return candidates.Count > (2 * limit) + 10 ? null : candidates;
    }

    /// <summary>
    /// The unfiltered list on PostgreSQL, and one group's summary (the header of its page: the filter's <c>group</c>, no
    /// other term), in four statements kept prepared with their generic plans (<see cref="Storage.PostgreSql.PreparedReads"/>;
    /// planning them was most of the list's time on a partitioned ledger): the counts kept per group; for each group the
    /// list can show, its first failure time and its newest failure's id (the sample, whose time is the group's last), the
    /// two ends of its range of the grouping's index; those newest failures by id; and the shown groups' last 24 hours
    /// counted by hour in the database, each group its range of the index from the trend's start (7,000 rows read at 10 M
    /// tasks before, 24 a group now). Null for a filtered list, or when so many groups tie that one aggregation reads less.
    /// </summary>
    private async Task<FailureGroups?> PreparedRolledUpGroupsAsync(FailureFilter f, DateTime start, bool partitioned, CancellationToken ct)
    {
        if (f is not { Name: null, Queue: null, From: null, To: null })
        {
            return null;
        }

        var column = FailureGroupColumns.Of(f.By);
        var open = IndexedOpenFailures(f, partitioned);
        await using var generic = await Storage.PostgreSql.PreparedReads.GenericPlansAsync(_db, ct).ConfigureAwait(false);
        var counts = await KeptCountsAsync(f, ct).ConfigureAwait(false);
        if (Candidates(counts, f.Limit) is not { } candidates)
        {
            return null;
        }

        var ends = await _db.Set<Storage.FailureGroupCount>().AsNoTracking().TagWith(Storage.PostgreSql.PreparedReads.Tag)
            .Where(c => c.Grouping == f.By && candidates.Contains(c.GroupId))
            .Select(c => c.GroupId).Distinct()
            .Select(id => new
            {
                Id = id,
                First = open.Where(t => EF.Property<string>(t, column) == id).Min(t => (DateTime?)(t.Stop ?? t.DispatchedAt)),
                Newest = open.Where(t => EF.Property<string>(t, column) == id)
                    .OrderByDescending(t => t.Stop ?? t.DispatchedAt).ThenByDescending(t => t.Id).Select(t => (Guid?)t.Id).FirstOrDefault(),
            })
            .ToListAsync(ct).ConfigureAwait(false);

        // The newest failures read by id (a scalar subquery above: EF Core joins a whole row's FirstOrDefault as a ROW_NUMBER
        // over every open failure, 90,000 at 10 M tasks, 200 ms), each with its runs in its own day.
        var newestIds = ends.Where(e => e.Newest is not null).Select(e => e.Newest!.Value).ToList();
        var newest = (await FailureReads(open.Where(t => newestIds.Contains(t.Id)).TagWith(Storage.PostgreSql.PreparedReads.Tag), partitioned)
            .ToListAsync(ct).ConfigureAwait(false)).ToDictionary(x => x.Id);
        var samples = ends.ToDictionary(e => e.Id, e => (e.First, Newest: e.Newest is { } n ? newest.GetValueOrDefault(n) : null), StringComparer.Ordinal);

        // A group emptied since its count was read has no ends: left out, as on the other paths.
        var shown = counts
            .Select(c => samples.TryGetValue(c.Id, out var e) && e.First is { } first && e.Newest is { } sample
                ? (c.Id, c.Count, First: first, Newest: sample)
                : (c.Id, c.Count, First: DateTime.MinValue, Newest: null))
            .OrderByDescending(g => g.Count).ThenByDescending(g => g.Newest?.FailedAt ?? DateTime.MinValue).ThenBy(g => g.Id, StringComparer.Ordinal)
            .Take(f.Limit).ToList();
        var total = counts.Sum(c => c.Count);
        var shownIds = shown.Select(g => g.Id).ToList();

        // Each failure's hour of the trend, from the first whole microsecond at or after its start: PostgreSQL's times are
        // whole microseconds, so a failure is at or after start + n hours exactly when it is at or after that bound + n hours.
        var since = new DateTime((start.Ticks + 9) / 10 * 10, DateTimeKind.Utc);
        var hours = await _db.Set<Storage.FailureGroupCount>().AsNoTracking().TagWith(Storage.PostgreSql.PreparedReads.Tag)
            .Where(c => c.Grouping == f.By && shownIds.Contains(c.GroupId))
            .Select(c => c.GroupId).Distinct()
            .SelectMany(id => open.Where(t => EF.Property<string>(t, column) == id && (t.Stop ?? t.DispatchedAt) >= since)
                .GroupBy(t => Math.Floor(((t.Stop ?? t.DispatchedAt) - since).TotalHours))
                .Select(h => new { Id = id, Hour = h.Key, Count = h.Count() }))
            .ToListAsync(ct).ConfigureAwait(false);
        var groups = new List<FailureGroup>(shown.Count);
        foreach (var g in shown)
        {
            var sample = g.Newest is { } read ? Open(read, f.By) : null;
            if (sample is null || sample.GroupId != g.Id)
            {
                // Its newest failure changed group since the counts were read (a failure written meanwhile): as if it had not been there.
                continue;
            }

            var trend = new int[24];
            foreach (var h in hours.Where(h => h.Id == g.Id && h.Hour is >= 0 and < 24))
            {
                trend[(int)h.Hour] += h.Count;
            }

            groups.Add(new FailureGroup(g.Id, f.By, sample.Key, sample.Signature.ExceptionType, checked((int)g.Count), Utc(g.First), sample.FailedAt,
                sample.TaskId, Preview(sample.Error), trend));
        }

        return new FailureGroups(groups, checked((int)total), Truncated: false);
    }

    /// <summary>The statement of <see cref="GroupCounts"/> (the plan tests read its plan).</summary>
    internal string GroupCountsSql(FailureFilter f, bool partitioned) => GroupCounts(f, partitioned).ToQueryString();

    private sealed record GroupCount(string? Id, int Count, DateTime First, DateTime Last);

    /// <summary>The open failures a filter matches (its <c>group</c> too, not its <c>q</c> or cursor), for the grouping's index.</summary>
    private IQueryable<TaskLog> IndexedOpenFailures(FailureFilter f, bool partitioned)
    {
        var q = OpenFailureTasks(f, partitioned);
        if (f.Group is { } group)
        {
            var column = FailureGroupColumns.Of(f.By);
            q = q.Where(t => EF.Property<string>(t, column) == group);
        }

        return q;
    }

    private static IQueryable<TaskLog> Newest(IQueryable<TaskLog> q) => q.OrderByDescending(t => t.Stop ?? t.DispatchedAt).ThenByDescending(t => t.Id);

    private static int[] Trend(IEnumerable<DateTime> failedAt, DateTime start)
    {
        var trend = new int[24];
        foreach (var at in failedAt)
        {
            var hour = (int)Math.Floor((at - start).TotalHours);
            if (hour is >= 0 and < 24)
            {
                trend[hour]++;
            }
        }

        return trend;
    }

    private static DateTime Utc(DateTime at) => DateTime.SpecifyKind(at, DateTimeKind.Utc);

    /// <summary>Open failures newest first, each with its group under the filter's <c>by</c>; <c>group</c> and <c>q</c> applied.</summary>
    private async Task<(List<OpenFailure> Failures, bool Truncated)> OpenFailuresAsync(FailureFilter f, bool partitioned, CancellationToken ct)
    {
        var raw = await OpenFailuresQuery(f, partitioned).ToListAsync(ct).ConfigureAwait(false);
        var truncated = raw.Count > MaxFailuresScanned;
        var failures = new List<OpenFailure>(Math.Min(raw.Count, MaxFailuresScanned));
        foreach (var x in raw.Take(MaxFailuresScanned))
        {
            var failure = Open(x, f.By);
            if ((f.Group is null || f.Group == failure.GroupId)
                && (f.Search is not { } search
                    || (FailureSignature.Unstated(failure.Error)?.Contains(search, StringComparison.OrdinalIgnoreCase) ?? false)
                    || (x.Input?.Contains(search, StringComparison.OrdinalIgnoreCase) ?? false)))
            {
                failures.Add(failure);
            }
        }

        return (failures, truncated);
    }

    /// <summary>
    /// A failure's groups under each grouping: by the signature of its last failed run's error (else the task's), by its
    /// task name, by that run's queue (else the task's). The one computation behind the stored groups and the ones read.
    /// </summary>
    private static (string Exception, string Type, string Queue, FailureSignature Signature) Groups(FailureRead x)
    {
        var signature = FailureSignature.Parse(x.RunError ?? x.TaskError);
        return (FailureGroupKey.Hash(FailureGrouping.Exception, signature.ToString()), FailureGroupKey.Hash(FailureGrouping.Type, x.Name),
            FailureGroupKey.Hash(FailureGrouping.Queue, x.RunQueue ?? x.TaskQueue ?? "(none)"), signature);
    }

    private static OpenFailure Open(FailureRead x, FailureGrouping by)
    {
        var (exception, type, queue, signature) = Groups(x);
        var queueName = x.RunQueue ?? x.TaskQueue;
        var (groupId, key) = by switch
        {
            FailureGrouping.Type => (type, x.Name),
            FailureGrouping.Queue => (queue, queueName ?? "(none)"),
            _ => (exception, signature.ToString()),
        };
        return new OpenFailure(x.Id, x.Name, queueName, Utc(x.FailedAt), groupId, key, signature, x.RunError ?? x.TaskError);
    }

    /// <summary>The statement of a page of <see cref="FailuresAsync"/> from the stored groups (the plan tests read its plan).</summary>
    internal string FailurePageSql(FailureFilter f, bool partitioned) =>
        FailureReads(Newest(IndexedOpenFailures(f, partitioned)).Take(f.Limit + 1), partitioned).ToQueryString();

    /// <summary>The statement of <see cref="OpenFailuresAsync"/> (the plan tests read its plan).</summary>
    internal string OpenFailuresSql(FailureFilter f, bool partitioned) => OpenFailuresQuery(f, partitioned).ToQueryString();

    /// <summary>The newest open failures, at most one more than <see cref="MaxFailuresScanned"/>, read with their runs' text.</summary>
    private IQueryable<FailureRead> OpenFailuresQuery(FailureFilter f, bool partitioned) =>
        FailureReads(Newest(OpenFailureTasks(f, partitioned)).Take(MaxFailuresScanned + 1), partitioned);

    /// <summary>The open failures (failed, not resolved) matching the filter's <c>internal</c>, <c>name</c>, <c>queue</c>, <c>from</c> and <c>to</c>.</summary>
    private IQueryable<TaskLog> OpenFailureTasks(FailureFilter f, bool partitioned)
    {
        var q = InternalTasksFilter.Apply(_db.TaskLogs.AsNoTracking(), f.Internal)
            .Where(t => t.State == TaskState.Failed && t.Resolution == null);
        if (f.Name is { } name)
        {
            q = q.Where(t => t.Name == name);
        }

        if (f.Queue is { } queue)
        {
            q = _database.Provider == LedgerProvider.Sqlite ? SentToOrConsumedFromOnSqlite(q, queue)
                : Pruned(q.Where(t => t.QueueName == queue || t.Runs.Any(r => r.QueueName == queue && PartitionPruning.SameDay(r.TaskId, t.Id))), partitioned);
        }

        if (f.From is { } from)
        {
            q = q.Where(t => (t.Stop ?? t.DispatchedAt) >= from);
        }

        if (f.To is { } to)
        {
            q = q.Where(t => (t.Stop ?? t.DispatchedAt) < to);
        }

        return q;
    }

    /// <summary>
    /// Each task with the queue and error of its last failed run. On a partitioned ledger each task's runs are looked up in
    /// the task's own day (<see cref="PartitionPruning.SameDay"/>): without it, both run lookups of each of the 10,000
    /// failures probe every day's partition (1 M tasks, 17 partitions: 592,000 buffers and 1.5 s against 70,000 and 0.4 s;
    /// docs/scale.md "Session 12 (tenm)").
    /// </summary>
    private static IQueryable<FailureRead> FailureReads(IQueryable<TaskLog> tasks, bool partitioned) => Pruned(tasks.Select(t => new FailureRead
    {
        Id = t.Id,
        Name = t.Name,
        TaskQueue = t.QueueName,
        FailedAt = t.Stop ?? t.DispatchedAt,
        RunQueue = t.Runs.Where(r => r.State == TaskRunState.Failed && PartitionPruning.SameDay(r.TaskId, t.Id))
            .OrderByDescending(r => r.Start).Select(r => r.QueueName).FirstOrDefault(),
        RunError = t.Runs.Where(r => r.State == TaskRunState.Failed && PartitionPruning.SameDay(r.TaskId, t.Id))
            .OrderByDescending(r => r.Start).Select(r => r.ErrorMessage!.Substring(0, ErrorScanLength)).FirstOrDefault(),
        TaskError = t.ErrorMessage!.Substring(0, ErrorScanLength),
        Input = t.Input!.Substring(0, InputPreviewLength),
    }), partitioned);

    /// <summary>The query as written on a partitioned ledger; elsewhere (no day column) without its <see cref="PartitionPruning.SameDay"/> terms.</summary>
    private static IQueryable<T> Pruned<T>(IQueryable<T> q, bool partitioned) =>
        partitioned ? q : q.Provider.CreateQuery<T>(new WithoutSameDay().Visit(q.Expression));

    private sealed class WithoutSameDay : System.Linq.Expressions.ExpressionVisitor
    {
        protected override System.Linq.Expressions.Expression VisitMethodCall(System.Linq.Expressions.MethodCallExpression node) =>
            node.Method.DeclaringType == typeof(PartitionPruning) && node.Method.Name == nameof(PartitionPruning.SameDay)
                ? System.Linq.Expressions.Expression.Constant(true)
                : base.VisitMethodCall(node);
    }

    /// <summary>An error as a group's sample or a row shows it: without JobLog's grouping line, cut.</summary>
    private static string? Preview(string? error)
    {
        var shown = FailureSignature.Unstated(error);
        return shown is { Length: > ErrorPreviewLength } ? shown[..ErrorPreviewLength] + "…" : shown;
    }

    /// <summary>One open failure as read (<see cref="OpenFailuresQuery"/>).</summary>
    private sealed class FailureRead
    {
        public Guid Id { get; init; }

        public string Name { get; init; } = "";

        public string? TaskQueue { get; init; }

        public DateTime FailedAt { get; init; }

        public string? RunQueue { get; init; }

        public string? RunError { get; init; }

        public string? TaskError { get; init; }

        public string? Input { get; init; }
    }

    private sealed record OpenFailure(
        Guid TaskId, string Name, string? Queue, DateTime FailedAt, string GroupId, string Key, FailureSignature Signature, string? Error);
}
