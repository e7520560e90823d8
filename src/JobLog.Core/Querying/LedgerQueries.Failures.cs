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

    /// <summary>The open failures (failed, not resolved) matching a filter, grouped by its <c>by</c>; most failures first.</summary>
    /// <param name="f">The filter (see <see cref="FailureFilter.Parse"/>); its limit bounds the groups.</param>
    /// <param name="now">The current time (UTC), for the trend.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The groups.</returns>
    public async Task<FailureGroups> FailureGroupsAsync(FailureFilter f, DateTime now, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(f);
        var (failures, truncated) = await OpenFailuresAsync(f, ct).ConfigureAwait(false);
        var start = now.AddHours(-24);
        var groups = failures.GroupBy(x => x.GroupId).Select(g =>
        {
            var newest = g.First();
            var trend = new int[24];
            foreach (var x in g)
            {
                var hour = (int)Math.Floor((x.FailedAt - start).TotalHours);
                if (hour is >= 0 and < 24)
                {
                    trend[hour]++;
                }
            }

            return new FailureGroup(g.Key, f.By, newest.Key, newest.Signature.ExceptionType, g.Count(), g.Min(x => x.FailedAt),
                newest.FailedAt, newest.TaskId, Preview(newest.Error), trend);
        }).OrderByDescending(g => g.Count).ThenByDescending(g => g.LastSeen).ThenBy(g => g.Id, StringComparer.Ordinal).Take(f.Limit).ToList();
        return new FailureGroups(groups, failures.Count, truncated);
    }

    /// <summary>One page of the open failures matching a filter (e.g. one group's, with <c>group</c>), newest first.</summary>
    /// <param name="f">The filter (see <see cref="FailureFilter.Parse"/>).</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The page.</returns>
    public async Task<Page<FailureRow>> FailuresAsync(FailureFilter f, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(f);
        var (failures, _) = await OpenFailuresAsync(f, ct).ConfigureAwait(false);
        IEnumerable<OpenFailure> rows = failures;
        if (f.After is { } c)
        {
            rows = rows.Where(x => x.FailedAt < c.At || (x.FailedAt == c.At && x.TaskId.CompareTo(c.Id) < 0));
        }

        var page = rows.Take(f.Limit + 1)
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
    public async Task<IReadOnlyList<Guid>> OpenFailureIdsAsync(FailureFilter f, int max, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(f);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(max, MaxFailuresScanned);
        var (failures, _) = await OpenFailuresAsync(f with { After = null }, ct).ConfigureAwait(false);
        return failures.Take(max).Select(x => x.TaskId).ToList();
    }

    /// <summary>Open failures newest first, each with its group under the filter's <c>by</c>; <c>group</c> and <c>q</c> applied.</summary>
    private async Task<(List<OpenFailure> Failures, bool Truncated)> OpenFailuresAsync(FailureFilter f, CancellationToken ct)
    {
        var partitioned = await _database.IsPartitionedAsync(_db, ct).ConfigureAwait(false);
        var raw = await OpenFailuresQuery(f, partitioned).ToListAsync(ct).ConfigureAwait(false);
        var truncated = raw.Count > MaxFailuresScanned;
        var failures = new List<OpenFailure>(Math.Min(raw.Count, MaxFailuresScanned));
        foreach (var x in raw.Take(MaxFailuresScanned))
        {
            var error = x.RunError ?? x.TaskError;
            var queueName = x.RunQueue ?? x.TaskQueue;
            var signature = FailureSignature.Parse(error);
            var key = f.By switch
            {
                FailureGrouping.Type => x.Name,
                FailureGrouping.Queue => queueName ?? "(none)",
                _ => signature.ToString(),
            };
            var groupId = FailureGroupKey.Hash(f.By, key);
            if ((f.Group is null || f.Group == groupId)
                && (f.Search is not { } search
                    || (error?.Contains(search, StringComparison.OrdinalIgnoreCase) ?? false)
                    || (x.Input?.Contains(search, StringComparison.OrdinalIgnoreCase) ?? false)))
            {
                failures.Add(new OpenFailure(x.Id, x.Name, queueName, DateTime.SpecifyKind(x.FailedAt, DateTimeKind.Utc), groupId, key, signature, error));
            }
        }

        return (failures, truncated);
    }

    /// <summary>The statement of <see cref="OpenFailuresAsync"/> (the plan tests read its plan).</summary>
    internal string OpenFailuresSql(FailureFilter f, bool partitioned) => OpenFailuresQuery(f, partitioned).ToQueryString();

    /// <summary>
    /// The newest open failures with the queue and error of each one's last failed run. On a partitioned ledger each
    /// task's runs are looked up in the task's own day (<see cref="PartitionPruning.SameDay"/>): without it, both run
    /// lookups of each of the 10,000 failures probe every day's partition (1 M tasks, 17 partitions: 592,000 buffers
    /// and 1.5 s against 70,000 and 0.4 s; docs/scale.md "Session 12 (tenm)").
    /// </summary>
    private IQueryable<FailureRead> OpenFailuresQuery(FailureFilter f, bool partitioned)
    {
        var q = InternalTasksFilter.Apply(_db.TaskLogs.AsNoTracking(), f.Internal)
            .Where(t => t.State == TaskState.Failed && t.Resolution == null);
        if (f.Name is { } name)
        {
            q = q.Where(t => t.Name == name);
        }

        if (f.Queue is { } queue)
        {
            q = partitioned
                ? q.Where(t => t.QueueName == queue || t.Runs.Any(r => r.QueueName == queue && PartitionPruning.SameDay(r.TaskId, t.Id)))
                : q.Where(t => t.QueueName == queue || t.Runs.Any(r => r.QueueName == queue));
        }

        if (f.From is { } from)
        {
            q = q.Where(t => (t.Stop ?? t.DispatchedAt) >= from);
        }

        if (f.To is { } to)
        {
            q = q.Where(t => (t.Stop ?? t.DispatchedAt) < to);
        }

        var newest = q.OrderByDescending(t => t.Stop ?? t.DispatchedAt).ThenByDescending(t => t.Id).Take(MaxFailuresScanned + 1);
        return partitioned
            ? newest.Select(t => new FailureRead
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
            })
            : newest.Select(t => new FailureRead
            {
                Id = t.Id,
                Name = t.Name,
                TaskQueue = t.QueueName,
                FailedAt = t.Stop ?? t.DispatchedAt,
                RunQueue = t.Runs.Where(r => r.State == TaskRunState.Failed).OrderByDescending(r => r.Start).Select(r => r.QueueName).FirstOrDefault(),
                RunError = t.Runs.Where(r => r.State == TaskRunState.Failed).OrderByDescending(r => r.Start)
                    .Select(r => r.ErrorMessage!.Substring(0, ErrorScanLength)).FirstOrDefault(),
                TaskError = t.ErrorMessage!.Substring(0, ErrorScanLength),
                Input = t.Input!.Substring(0, InputPreviewLength),
            });
    }

    private static string? Preview(string? error) =>
        error is { Length: > ErrorPreviewLength } ? error[..ErrorPreviewLength] + "…" : error;

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
