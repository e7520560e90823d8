using System.Linq.Expressions;
using Microsoft.EntityFrameworkCore;

namespace JobLog.AspNetCore.Dashboard.Queries;

/// <summary>
/// The one query layer behind the dashboard's pages, its JSON API and the Worker's CLI: the same filter gives the same
/// rows everywhere. Lists are keyset-paginated newest first on an indexed time column and an id tie-break, so a page
/// deep in a million rows costs what the first one does.
/// </summary>
internal sealed class LedgerQueries(JobLogDbContext db)
{
    private const int InputPreviewLength = 300;
    private const int RelatedLimit = 500;
    private readonly bool _postgres = db.Database.IsNpgsql();

    public async Task<Page<TaskRow>> TasksAsync(TaskFilter f, CancellationToken ct)
    {
        var q = InternalTasksFilter.Apply(db.TaskLogs.AsNoTracking(), f.Internal);
        if (f.States is { Count: > 0 } states)
        {
            q = q.Where(t => states.Contains(t.State));
        }

        if (f.Name is { } name)
        {
            q = q.Where(t => t.Name == name);
        }

        if (f.Queue is { } queue)
        {
            // The exchange or queue the task was sent to, or a queue that consumed it (a published event's runs name
            // the subscribers' queues).
            q = q.Where(t => t.QueueName == queue || t.Runs.Any(r => r.QueueName == queue));
        }

        if (f.From is { } from)
        {
            q = q.Where(t => t.DispatchedAt >= from);
        }

        if (f.To is { } to)
        {
            q = q.Where(t => t.DispatchedAt < to);
        }

        if (f.Search is { } search)
        {
            q = q.Where(Contains<TaskLog>(t => t.Input, search));
        }

        if (f.After is { } c)
        {
            // The first conjunct keeps the time index usable for the range; the second breaks ties by id.
            q = q.Where(t => t.DispatchedAt <= c.At && (t.DispatchedAt < c.At || t.Id.CompareTo(c.Id) < 0));
        }

        var rows = await TaskRows(q.OrderByDescending(t => t.DispatchedAt).ThenByDescending(t => t.Id).Take(f.Limit + 1))
            .ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, f.Limit, r => new Cursor(r.DispatchedAt, r.Id));
    }

    /// <summary>Distinct task names among the most recent tasks (suggestions for the name filter; cheap on any size).</summary>
    public async Task<IReadOnlyList<string>> RecentTaskNamesAsync(CancellationToken ct) =>
        await db.TaskLogs.AsNoTracking().Where(t => !t.IsInternal).OrderByDescending(t => t.DispatchedAt).Take(5000)
            .Select(t => t.Name).Distinct().OrderBy(n => n).Take(200).ToListAsync(ct).ConfigureAwait(false);

    public async Task<TaskDetail?> TaskAsync(Guid id, CancellationToken ct)
    {
        var task = await db.TaskLogs.AsNoTracking().FirstOrDefaultAsync(t => t.Id == id, ct).ConfigureAwait(false);
        if (task is null)
        {
            return null;
        }

        var runs = await db.TaskRunLogs.AsNoTracking().Where(r => r.TaskId == id)
            .OrderBy(r => r.Start).ThenBy(r => r.Retries).ToListAsync(ct).ConfigureAwait(false);
        var runIds = runs.Select(r => (Guid?)r.Id).ToList();
        ParentRun? parent = null;
        if (task.ParentRunId is { } parentRunId)
        {
            parent = await db.TaskRunLogs.AsNoTracking().Where(r => r.Id == parentRunId)
                .Select(r => new ParentRun(r.Id, r.TaskId, r.Name)).FirstOrDefaultAsync(ct).ConfigureAwait(false);
        }

        IReadOnlyList<TaskRow> children = [];
        IReadOnlyList<RelatedRequest> outbound = [];
        if (runIds.Count > 0)
        {
            children = await TaskRows(db.TaskLogs.AsNoTracking().Where(t => runIds.Contains(t.ParentRunId))
                .OrderBy(t => t.DispatchedAt).Take(RelatedLimit)).ToListAsync(ct).ConfigureAwait(false);
            outbound = await RelatedRequestsAsync(o => runIds.Contains(o.TaskRunLogId), ct).ConfigureAwait(false);
        }

        return new TaskDetail(task, runs, parent, children, outbound);
    }

    public async Task<Page<RequestRow>> InputRequestsAsync(RequestFilter f, CancellationToken ct)
    {
        var q = RequestWhere(db.InputRequestLogs.AsNoTracking(), f);
        if (f.Ip is { } ip)
        {
            q = q.Where(r => r.Ip == ip);
        }

        if (f.User is { } user)
        {
            q = q.Where(r => r.UserId == user);
        }

        var rows = await q.OrderByDescending(r => r.RequestTimestamp).ThenByDescending(r => r.Id).Take(f.Limit + 1)
            .Select(r => new RequestRow(r.Id, r.Method, r.Host, r.Path, r.Slug, r.ResponseCode, r.Status, r.RequestTimestamp,
                r.ResponseTimestamp, r.Ip, r.UserId, r.ExceptionName))
            .ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, f.Limit, r => new Cursor(r.RequestTimestamp, r.Id));
    }

    public async Task<InputRequestDetail?> InputRequestAsync(Guid id, CancellationToken ct)
    {
        var request = await db.InputRequestLogs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct).ConfigureAwait(false);
        if (request is null)
        {
            return null;
        }

        var outbound = await RequestRows(db.OutputRequestLogs.AsNoTracking().Where(r => r.InputRequestId == id)
            .OrderBy(r => r.RequestTimestamp).Take(RelatedLimit)).ToListAsync(ct).ConfigureAwait(false);
        return new InputRequestDetail(request, outbound.Select(r => new RelatedRequest(null, r)).ToList());
    }

    public async Task<Page<RequestRow>> OutputRequestsAsync(RequestFilter f, CancellationToken ct)
    {
        var q = RequestWhere(db.OutputRequestLogs.AsNoTracking(), f);
        var rows = await RequestRows(q.OrderByDescending(r => r.RequestTimestamp).ThenByDescending(r => r.Id).Take(f.Limit + 1))
            .ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, f.Limit, r => new Cursor(r.RequestTimestamp, r.Id));
    }

    public async Task<OutputRequestDetail?> OutputRequestAsync(Guid id, CancellationToken ct)
    {
        var request = await db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects)
            .FirstOrDefaultAsync(r => r.Id == id, ct).ConfigureAwait(false);
        if (request is null)
        {
            return null;
        }

        RequestRow? input = null;
        if (request.InputRequestId is { } inputId)
        {
            input = await db.InputRequestLogs.AsNoTracking().Where(r => r.Id == inputId)
                .Select(r => new RequestRow(r.Id, r.Method, r.Host, r.Path, r.Slug, r.ResponseCode, r.Status, r.RequestTimestamp,
                    r.ResponseTimestamp, r.Ip, r.UserId, r.ExceptionName))
                .FirstOrDefaultAsync(ct).ConfigureAwait(false);
        }

        var runIds = request.RelatedObjects.Where(o => o.TaskRunLogId is not null).Select(o => o.TaskRunLogId!.Value).ToList();
        IReadOnlyList<RelatedRun> runs = runIds.Count == 0
            ? []
            : await db.TaskRunLogs.AsNoTracking().Where(r => runIds.Contains(r.Id))
                .Select(r => new RelatedRun(r.Id, r.TaskId, r.Name, r.State, r.Start)).ToListAsync(ct).ConfigureAwait(false);
        return new OutputRequestDetail(request, input, runs);
    }

    public async Task<Page<CommandRow>> CommandsAsync(CommandFilter f, CancellationToken ct)
    {
        var q = db.CommandLogs.AsNoTracking();
        if (f.Name is { } name)
        {
            q = q.Where(c => c.Name == name);
        }

        q = f.Outcome switch
        {
            CommandOutcome.Succeeded => q.Where(c => c.IsSuccessful == true),
            CommandOutcome.Failed => q.Where(c => c.IsSuccessful == false),
            CommandOutcome.Running => q.Where(c => c.IsSuccessful == null),
            _ => q,
        };
        if (f.From is { } from)
        {
            q = q.Where(c => c.Start >= from);
        }

        if (f.To is { } to)
        {
            q = q.Where(c => c.Start < to);
        }

        if (f.Search is { } search)
        {
            q = q.Where(Contains<CommandLog>(c => c.Input, search));
        }

        if (f.After is { } k)
        {
            q = q.Where(c => c.Start <= k.At && (c.Start < k.At || c.Id.CompareTo(k.Id) < 0));
        }

        var rows = await q.OrderByDescending(c => c.Start).ThenByDescending(c => c.Id).Take(f.Limit + 1)
            .Select(c => new CommandRow(c.Id, c.Name,
                c.Input != null && c.Input.Length > InputPreviewLength ? c.Input.Substring(0, InputPreviewLength) + "…" : c.Input,
                c.Start, c.Stop, c.IsSuccessful, c.ExitCode, c.Host))
            .ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, f.Limit, r => new Cursor(r.Start, r.Id));
    }

    public async Task<CommandDetail?> CommandAsync(Guid id, CancellationToken ct)
    {
        var command = await db.CommandLogs.AsNoTracking().FirstOrDefaultAsync(c => c.Id == id, ct).ConfigureAwait(false);
        if (command is null)
        {
            return null;
        }

        var outbound = await RelatedRequestsAsync(o => o.CommandLogId == id, ct).ConfigureAwait(false);
        return new CommandDetail(command, outbound);
    }

    /// <summary>Tasks by state (all time), finished tasks over the window, the slowest task names of the window.</summary>
    public async Task<(IReadOnlyList<StateCount> Counts, Chart Chart, IReadOnlyList<SlowTask> Slowest)> OverviewAsync(
        bool day, DateTime now, CancellationToken ct)
    {
        // MassTransit's infrastructure messages are not the application's work: out of the counts and the failure rate.
        var counted = await db.TaskLogs.AsNoTracking().Where(t => !t.IsInternal).GroupBy(t => t.State)
            .Select(g => new { State = g.Key, Count = g.LongCount() }).ToListAsync(ct).ConfigureAwait(false);
        var counts = Enum.GetValues<TaskState>()
            .Select(s => new StateCount(s, counted.FirstOrDefault(c => c.State == s)?.Count ?? 0)).ToList();
        var chart = await ChartAsync(day, now, ct).ConfigureAwait(false);
        var slowest = await SlowestAsync(chart.From, ct).ConfigureAwait(false);
        return (counts, chart, slowest);
    }

    private async Task<Chart> ChartAsync(bool day, DateTime now, CancellationToken ct)
    {
        var bucket = day ? TimeSpan.FromHours(1) : TimeSpan.FromMinutes(1);
        var count = day ? 24 : 60;
        var to = new DateTime(now.Ticks - (now.Ticks % bucket.Ticks), DateTimeKind.Utc) + bucket;
        var from = to - (bucket * count);
        var finished = db.TaskLogs.AsNoTracking()
            .Where(t => t.Stop >= from && t.Stop < to && !t.IsInternal
                && (t.State == TaskState.Succeeded || t.State == TaskState.Failed || t.State == TaskState.Expired));
        var grouped = day
            ? await finished.GroupBy(t => new { t.Stop!.Value.Year, t.Stop.Value.Month, t.Stop.Value.Day, t.Stop.Value.Hour, Minute = 0, t.State })
                .Select(g => new { g.Key.Year, g.Key.Month, g.Key.Day, g.Key.Hour, g.Key.Minute, g.Key.State, Count = g.Count() })
                .ToListAsync(ct).ConfigureAwait(false)
            : await finished.GroupBy(t => new { t.Stop!.Value.Year, t.Stop.Value.Month, t.Stop.Value.Day, t.Stop.Value.Hour, t.Stop.Value.Minute, t.State })
                .Select(g => new { g.Key.Year, g.Key.Month, g.Key.Day, g.Key.Hour, g.Key.Minute, g.Key.State, Count = g.Count() })
                .ToListAsync(ct).ConfigureAwait(false);
        var buckets = new (int Succeeded, int Failed, int Expired)[count];
        foreach (var g in grouped)
        {
            var start = new DateTime(g.Year, g.Month, g.Day, g.Hour, g.Minute, 0, DateTimeKind.Utc);
            var index = (int)((start - from).Ticks / bucket.Ticks);
            if (index < 0 || index >= count)
            {
                continue;
            }

            var b = buckets[index];
            buckets[index] = g.State switch
            {
                TaskState.Succeeded => (b.Succeeded + g.Count, b.Failed, b.Expired),
                TaskState.Failed => (b.Succeeded, b.Failed + g.Count, b.Expired),
                _ => (b.Succeeded, b.Failed, b.Expired + g.Count),
            };
        }

        return new Chart(day ? "day" : "hour", from, to, (int)bucket.TotalSeconds,
            buckets.Select((b, i) => new ChartBucket(from + (bucket * i), b.Succeeded, b.Failed, b.Expired)).ToList());
    }

    private async Task<IReadOnlyList<SlowTask>> SlowestAsync(DateTime since, CancellationToken ct)
    {
        // Runs that ended (SUCCEEDED, FAILED, RETRIED) and started in the window: the (State, Start) index.
        var query = _postgres
            ? db.Database.SqlQuery<SlowTask>($"""
                SELECT "Name", COUNT(*) AS "Runs",
                       AVG(EXTRACT(EPOCH FROM ("Stop" - "Start")))::double precision AS "AverageSeconds",
                       MAX(EXTRACT(EPOCH FROM ("Stop" - "Start")))::double precision AS "MaxSeconds"
                FROM "JobLogTaskRuns"
                WHERE "State" IN (2, 3, 4) AND "Start" >= {since} AND "Stop" IS NOT NULL
                GROUP BY "Name" ORDER BY 3 DESC LIMIT 5
                """)
            : db.Database.SqlQuery<SlowTask>($"""
                SELECT "Name", COUNT(*) AS "Runs",
                       AVG((julianday("Stop") - julianday("Start")) * 86400.0) AS "AverageSeconds",
                       MAX((julianday("Stop") - julianday("Start")) * 86400.0) AS "MaxSeconds"
                FROM "JobLogTaskRuns"
                WHERE "State" IN (2, 3, 4) AND "Start" >= {since} AND "Stop" IS NOT NULL
                GROUP BY "Name" ORDER BY 3 DESC LIMIT 5
                """);
        return await query.ToListAsync(ct).ConfigureAwait(false);
    }

    private IQueryable<T> RequestWhere<T>(IQueryable<T> q, RequestFilter f)
        where T : RequestLogBase
    {
        if (f.Status is { } status)
        {
            q = q.Where(r => r.Status == status);
        }

        if (f.Method is { } method)
        {
            q = q.Where(r => r.Method == method);
        }

        if (f.Host is { } host)
        {
            q = q.Where(r => r.Host == host);
        }

        if (f.Slug is { } slug)
        {
            q = q.Where(r => r.Slug == slug);
        }

        if (f.From is { } from)
        {
            q = q.Where(r => r.RequestTimestamp >= from);
        }

        if (f.To is { } to)
        {
            q = q.Where(r => r.RequestTimestamp < to);
        }

        if (f.Search is { } search)
        {
            q = q.Where(Contains<T>(r => r.Path, search));
        }

        if (f.After is { } c)
        {
            q = q.Where(r => r.RequestTimestamp <= c.At && (r.RequestTimestamp < c.At || r.Id.CompareTo(c.Id) < 0));
        }

        return q;
    }

    private async Task<IReadOnlyList<RelatedRequest>> RelatedRequestsAsync(
        Expression<Func<OutputRequestRelatedObject, bool>> relation, CancellationToken ct)
    {
        var rows = await db.OutputRequestRelatedObjects.AsNoTracking().Where(relation)
            .Join(db.OutputRequestLogs, o => o.OutputRequestId, r => r.Id, (o, r) => new { o.TaskRunLogId, r })
            .OrderBy(x => x.r.RequestTimestamp).Take(RelatedLimit)
            .Select(x => new RelatedRequest(x.TaskRunLogId, new RequestRow(x.r.Id, x.r.Method, x.r.Host, x.r.Path, x.r.Slug,
                x.r.ResponseCode, x.r.Status, x.r.RequestTimestamp, x.r.ResponseTimestamp, null, null, x.r.ExceptionName)))
            .ToListAsync(ct).ConfigureAwait(false);
        return rows;
    }

    private static IQueryable<TaskRow> TaskRows(IQueryable<TaskLog> q) =>
        q.Select(t => new TaskRow(t.Id, t.Name, t.QueueName, t.State,
            t.Input != null && t.Input.Length > InputPreviewLength ? t.Input.Substring(0, InputPreviewLength) + "…" : t.Input,
            t.DispatchedAt, t.Start, t.Stop, t.Runs.Count, t.Host));

    private static IQueryable<RequestRow> RequestRows(IQueryable<OutputRequestLog> q) =>
        q.Select(r => new RequestRow(r.Id, r.Method, r.Host, r.Path, r.Slug, r.ResponseCode, r.Status, r.RequestTimestamp,
            r.ResponseTimestamp, null, null, r.ExceptionName));

    /// <summary>A case-insensitive substring match, with the user's <c>%</c> and <c>_</c> taken literally.</summary>
    private Expression<Func<T, bool>> Contains<T>(Expression<Func<T, string?>> column, string text)
    {
        var pattern = "%" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal)
            .Replace("_", "\\_", StringComparison.Ordinal) + "%";
        Expression<Func<string?, bool>> match = _postgres
            ? s => EF.Functions.ILike(s!, pattern, "\\")
            : s => EF.Functions.Like(s, pattern, "\\");
        var body = new ReplaceParameter(match.Parameters[0], column.Body).Visit(match.Body);
        return Expression.Lambda<Func<T, bool>>(body, column.Parameters);
    }

    private static Page<T> ToPage<T>(List<T> rows, int limit, Func<T, Cursor> cursor)
    {
        if (rows.Count <= limit)
        {
            return new Page<T>(rows, null);
        }

        rows.RemoveAt(rows.Count - 1);
        return new Page<T>(rows, cursor(rows[^1]).ToString());
    }

    private sealed class ReplaceParameter(ParameterExpression from, Expression to) : ExpressionVisitor
    {
        protected override Expression VisitParameter(ParameterExpression node) => node == from ? to : base.VisitParameter(node);
    }
}
