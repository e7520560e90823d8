using System.Linq.Expressions;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Querying;

/// <summary>
/// The one query layer behind the dashboard's pages, its JSON API and the Worker's CLI: the same filter gives the same
/// rows everywhere. Lists are keyset-paginated newest first on an indexed time column and an id tie-break, so a page
/// deep in a million rows costs what the first one does. Registered (scoped) by <c>AddJobLog</c>; see
/// <c>docs/architecture.md#reading</c>.
/// </summary>
public sealed partial class LedgerQueries
{
    private const int InputPreviewLength = 300;
    private const int RelatedLimit = 500;

    /// <summary>The most runs a task's detail holds (<see cref="TaskAsync"/>): its latest.</summary>
    public const int MaxDetailRuns = 500;
    private readonly JobLogDbContext _db;
    private readonly LedgerDatabase _database;

    private readonly bool _searchIndex;

    internal LedgerQueries(JobLogDbContext db, LedgerDatabase database, bool searchIndex = true)
    {
        _db = db;
        _database = database;
        _searchIndex = searchIndex;
    }

    /// <summary>One page of tasks, newest dispatched first.</summary>
    /// <param name="f">The filter (see <see cref="TaskFilter.Parse"/>).</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The page.</returns>
    public async Task<Page<TaskRow>> TasksAsync(TaskFilter f, CancellationToken ct)
    {
        List<Guid>? listed = null;
        var partitioned = false;
        if (f.Queue is { } queue)
        {
            listed = await FewTasksOfQueueAsync(queue, ct).ConfigureAwait(false);
            partitioned = listed is null && await _database.IsPartitionedAsync(_db, ct).ConfigureAwait(false);
        }

        if (f.Search is { } search)
        {
            var q = Filtered(f, partitioned, listed);
            if (f.States is { Count: > 0 } states)
            {
                q = q.Where(t => states.Contains(t.State));
            }

            return await SearchTasksAsync(q, TaskSearch.Parse(search), f.Limit, ct).ConfigureAwait(false);
        }

        var rows = await TaskPage(f, partitioned, listed).ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, f.Limit, r => new Cursor(r.DispatchedAt, r.Id));
    }

    /// <summary>
    /// How many tasks sent to a queue and runs consumed from it make it busy. A busy queue's filter walks the newest tasks
    /// and checks each (on a partitioned ledger, its runs in the task's own partition): fast while matches are dense
    /// (1 M tasks, a queue of 57,000 runs: 15 ms). A rare queue's walk would read every task (five runs among a million:
    /// 0.44–3.6 s, docs/scale.md "Session 10"), so its few tasks are listed from the indexes first
    /// (<see cref="FewTasksOfQueueAsync"/>) and the page is read by id.
    /// </summary>
    internal int BusyQueueRuns { get; init; } = 400;

    /// <summary>
    /// The ids of the tasks sent to <paramref name="queue"/> or consumed from it, when there are fewer than
    /// <see cref="BusyQueueRuns"/> such tasks and runs; null for a busy queue. Reads at most that many entries of the tasks'
    /// <c>(QueueName, DispatchedAt)</c> and the runs' <c>(QueueName, TaskId)</c> indexes (SQLite: <c>(QueueName, Start, TaskId)</c>).
    /// </summary>
    internal async Task<List<Guid>?> FewTasksOfQueueAsync(string queue, CancellationToken ct)
    {
        var ids = await TaskIdsOfQueue(queue).ToListAsync(ct).ConfigureAwait(false);
        return ids.Count < BusyQueueRuns ? ids.Distinct().ToList() : null;
    }

    /// <summary>The statement of <see cref="FewTasksOfQueueAsync"/> (the plan tests read its plan).</summary>
    internal string FewTasksOfQueueSql(string queue) => TaskIdsOfQueue(queue).ToQueryString();

    private IQueryable<Guid> TaskIdsOfQueue(string queue) =>
        _db.TaskLogs.AsNoTracking().Where(t => t.QueueName == queue).Select(t => t.Id)
            .Concat(_db.TaskRunLogs.AsNoTracking().Where(r => r.QueueName == queue).Select(r => r.TaskId))
            .Take(BusyQueueRuns);

    /// <summary>The query of one page of a filter without <c>q</c> (<see cref="TasksAsync"/>; the plan tests read its plan).</summary>
    /// <param name="f">The filter.</param>
    /// <param name="partitioned">The ledger is a partitioned PostgreSQL one (<see cref="Filtered"/>).</param>
    /// <param name="listed">A rare queue's tasks (<see cref="FewTasksOfQueueAsync"/>), or null.</param>
    internal IQueryable<TaskRow> TaskPage(TaskFilter f, bool partitioned = false, List<Guid>? listed = null) =>
        TaskRows(NewestFirst(OneWalkPerState(Filtered(f, partitioned, listed), f.States?.Distinct().ToList() ?? [], f.Limit)).Take(f.Limit + 1));

    /// <summary>
    /// The tasks of every part of the filter but its states and its search, after its cursor. A rare queue's tasks are
    /// the <paramref name="listed"/> ids; a busy queue's are checked task by task, on a <paramref name="partitioned"/>
    /// ledger with the queue's runs looked up in their task's partition only.
    /// </summary>
    private IQueryable<TaskLog> Filtered(TaskFilter f, bool partitioned = false, List<Guid>? listed = null)
    {
        var q = InternalTasksFilter.Apply(_db.TaskLogs.AsNoTracking(), f.Internal);
        if (f.Name is { } name)
        {
            q = q.Where(t => t.Name == name);
        }

        if (f.Queue is { } queue)
        {
            // The exchange or queue the task was sent to, or a queue that consumed it (a published event's runs name
            // the subscribers' queues).
            q = listed is not null ? q.Where(t => listed.Contains(t.Id))
                : partitioned
                ? q.Where(t => t.QueueName == queue || t.Runs.Any(r => r.QueueName == queue && PartitionPruning.SameDay(r.TaskId, t.Id)))
                : _database.Provider == LedgerProvider.Sqlite ? SentToOrConsumedFromOnSqlite(q, queue)
                : q.Where(t => t.QueueName == queue || t.Runs.Any(r => r.QueueName == queue));
        }

        if (f.From is { } from)
        {
            q = q.Where(t => t.DispatchedAt >= from);
        }

        if (f.To is { } to)
        {
            q = q.Where(t => t.DispatchedAt < to);
        }

        if (f.After is { } c)
        {
            // The first conjunct keeps the time index usable for the range; the second breaks ties by id.
            q = q.Where(t => t.DispatchedAt <= c.At && (t.DispatchedAt < c.At || t.Id.CompareTo(c.Id) < 0));
        }

        return q;
    }

    /// <summary>
    /// The tasks of <paramref name="q"/> sent to <paramref name="queue"/> or consumed from it, on SQLite: each task's runs
    /// are looked up by task (<c>(TaskId, ConsumerType, Retries)</c>) and their queue read from the row. SQLite's index of
    /// a queue's runs is in start order (migration <c>SqliteRunQueueIndex</c>), so a seek of it would read all of a busy
    /// queue's runs for every task; the queue's term is written (<c>|| ''</c>) so that no index can serve it, with or
    /// without statistics. The NULL test keeps a run without a queue out of an empty queue's filter, as the plain equality.
    /// </summary>
    private static IQueryable<TaskLog> SentToOrConsumedFromOnSqlite(IQueryable<TaskLog> q, string queue) =>
        q.Where(t => t.QueueName == queue || t.Runs.Any(r => r.QueueName != null && r.QueueName + "" == queue));

    /// <summary>
    /// The tasks of <paramref name="q"/> in one of <paramref name="states"/>. Several states are one newest-first walk
    /// each, merged: an index on (State, DispatchedAt) serves each in order, where <c>State IN (…)</c> would be read in
    /// full and sorted (SQLite; docs/scale.md).
    /// </summary>
    private static IQueryable<TaskLog> OneWalkPerState(IQueryable<TaskLog> q, List<TaskState> states, int limit)
    {
        if (states.Count <= 1)
        {
            var only = states.FirstOrDefault();
            return states.Count == 0 ? q : q.Where(t => t.State == only);
        }

        return states.Select(state => (IQueryable<TaskLog>)NewestFirst(q.Where(t => t.State == state)).Take(limit + 1))
            .Aggregate((walks, walk) => walks.Concat(walk));
    }

    private static async Task<Page<TaskRow>> TaskPageAsync(IQueryable<TaskLog> q, int limit, CancellationToken ct)
    {
        var rows = await TaskRows(NewestFirst(q).Take(limit + 1)).ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, limit, r => new Cursor(r.DispatchedAt, r.Id));
    }

    private static IOrderedQueryable<TaskLog> NewestFirst(IQueryable<TaskLog> q) =>
        q.OrderByDescending(t => t.DispatchedAt).ThenByDescending(t => t.Id);

    /// <summary>Distinct task names among the most recent tasks (suggestions for the name filter; cheap on any size).</summary>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>At most 200 names, sorted.</returns>
    public async Task<IReadOnlyList<string>> RecentTaskNamesAsync(CancellationToken ct) =>
        await _db.TaskLogs.AsNoTracking().Where(t => !t.IsInternal).OrderByDescending(t => t.DispatchedAt).Take(5000)
            .Select(t => t.Name).Distinct().OrderBy(n => n).Take(200).ToListAsync(ct).ConfigureAwait(false);

    /// <summary>One task with its runs, its parent run, its child tasks and its outbound requests.</summary>
    /// <param name="id">The task's id.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The detail, or null when the task is not in the ledger.</returns>
    public async Task<TaskDetail?> TaskAsync(Guid id, CancellationToken ct)
    {
        var task = await _db.TaskLogs.AsNoTracking().FirstOrDefaultAsync(t => t.Id == id, ct).ConfigureAwait(false);
        if (task is null)
        {
            return null;
        }

        // The latest MaxDetailRuns runs: a message redelivered without end (or one MessageId sent again and again) has
        // tens of thousands, and all of them made a page of 32 MB.
        var runs = await _db.TaskRunLogs.AsNoTracking().Where(r => r.TaskId == id)
            .OrderByDescending(r => r.Start).ThenByDescending(r => r.Retries).Take(MaxDetailRuns + 1).ToListAsync(ct).ConfigureAwait(false);
        var runCount = runs.Count <= MaxDetailRuns ? runs.Count : await _db.TaskRunLogs.CountAsync(r => r.TaskId == id, ct).ConfigureAwait(false);
        runs = runs.Take(MaxDetailRuns).Reverse().ToList();
        // Read untracked: the texts as shown, without JobLog's grouping line (FailureSignature.Stating).
        task.ErrorMessage = JobLog.Failures.FailureSignature.Unstated(task.ErrorMessage);
        foreach (var run in runs)
        {
            run.ErrorMessage = JobLog.Failures.FailureSignature.Unstated(run.ErrorMessage);
        }

        // The children and outbound requests of the runs shown (at most MaxDetailRuns ids: within SQLite's 32,766
        // parameters a statement).
        var runIds = runs.Select(r => (Guid?)r.Id).ToList();
        ParentRun? parent = null;
        if (task.ParentRunId is { } parentRunId)
        {
            parent = await _db.TaskRunLogs.AsNoTracking().Where(r => r.Id == parentRunId)
                .Select(r => new ParentRun(r.Id, r.TaskId, r.Name)).FirstOrDefaultAsync(ct).ConfigureAwait(false);
        }

        IReadOnlyList<TaskRow> children = [];
        IReadOnlyList<RelatedRequest> outbound = [];
        if (runs.Count > 0)
        {
            children = await TaskRows(_db.TaskLogs.AsNoTracking().Where(t => runIds.Contains(t.ParentRunId))
                .OrderBy(t => t.DispatchedAt).Take(RelatedLimit)).ToListAsync(ct).ConfigureAwait(false);
            outbound = await RelatedRequestsAsync(o => runIds.Contains(o.TaskRunLogId), ct).ConfigureAwait(false);
        }

        return new TaskDetail(task, runs, parent, children, outbound)
        {
            RunCount = runCount,
            Occurrences = await OccurrencesAsync(id, runs, runCount > runs.Count, ct).ConfigureAwait(false),
            Actions = await JobLog.Failures.FailureActionRow.OfTaskAsync(_db, id, ct).ConfigureAwait(false),
        };
    }

    /// <summary>
    /// <see cref="TaskDetail.Occurrences"/> of the runs shown: per consumer, its runs that began an occurrence up to each run by
    /// <c>Retries</c>; those before the runs shown (<paramref name="truncated"/>) counted in one statement per consumer
    /// (<c>IX_JobLogTaskRuns_TaskId_ConsumerType_Retries</c>), and one more when the consumer's first run of retry attempt 0
    /// was a redelivery (see <see cref="BeginsOccurrence"/>).
    /// </summary>
    private async Task<IReadOnlyDictionary<Guid, int>> OccurrencesAsync(Guid id, List<TaskRunLog> runs, bool truncated, CancellationToken ct)
    {
        var occurrences = new Dictionary<Guid, int>();
        foreach (var lane in runs.Where(r => r.JobRetryAttempt is not null).GroupBy(r => r.ConsumerType, StringComparer.Ordinal))
        {
            var ordered = lane.OrderBy(r => r.Retries).ToList();
            var first = ordered[0].Retries;
            var consumer = lane.Key;
            var occurrence = 0;
            if (truncated)
            {
                var before = _db.TaskRunLogs.AsNoTracking()
                    .Where(r => r.TaskId == id && r.ConsumerType == consumer && r.Retries < first && r.JobRetryAttempt == 0);
                occurrence = await before.CountAsync(r => !r.Redelivered, ct).ConfigureAwait(false);
                if (await before.OrderBy(r => r.Retries).Select(r => (bool?)r.Redelivered).FirstOrDefaultAsync(ct).ConfigureAwait(false) == true)
                {
                    occurrence++;
                }
            }

            foreach (var run in ordered)
            {
                if (BeginsOccurrence(run, occurrence))
                {
                    occurrence++;
                }

                if (occurrence > 0)
                {
                    occurrences[run.Id] = occurrence;
                }
            }
        }

        return occurrences;
    }

    /// <summary>
    /// Whether a job run began an occurrence: its retry attempt is 0 and it is no broker redelivery (a process died during
    /// the attempt, or before its acknowledgement: the same <c>StartJob</c> again, the same occurrence), unless no earlier
    /// run of its consumer began one (the first delivery left no run).
    /// </summary>
    private static bool BeginsOccurrence(TaskRunLog run, int occurrencesBefore) =>
        run.JobRetryAttempt == 0 && (!run.Redelivered || occurrencesBefore == 0);

    /// <summary>One page of inbound requests, newest first.</summary>
    /// <param name="f">The filter (see <see cref="RequestFilter.Parse"/>).</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The page.</returns>
    public async Task<Page<RequestRow>> InputRequestsAsync(RequestFilter f, CancellationToken ct)
    {
        var q = InputRequestWhere(f);
        return f.Search is { } search
            ? await SearchLogAsync(q, LogText.InputRequests, r => r.Path, r => r.Id, search, NewestFirst, InputRequestPageAsync, f.Limit, ct).ConfigureAwait(false)
            : await InputRequestPageAsync(q, f.Limit, ct).ConfigureAwait(false);
    }

    /// <summary>The query of one page of inbound requests without <c>q</c> (<see cref="InputRequestsAsync"/>; the plan tests read its plan).</summary>
    internal IQueryable<RequestRow> InputRequestPage(RequestFilter f) => InputRequestRows(NewestFirst(InputRequestWhere(f)).Take(f.Limit + 1));

    private IQueryable<InputRequestLog> InputRequestWhere(RequestFilter f)
    {
        var q = RequestWhere(_db.InputRequestLogs.AsNoTracking(), f);
        if (f.Ip is { } ip)
        {
            q = q.Where(r => r.Ip == ip);
        }

        if (f.User is { } user)
        {
            q = q.Where(r => r.UserId == user);
        }

        return q;
    }

    private static async Task<Page<RequestRow>> InputRequestPageAsync(IQueryable<InputRequestLog> q, int limit, CancellationToken ct)
    {
        var rows = await InputRequestRows(NewestFirst(q).Take(limit + 1)).ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, limit, r => new Cursor(r.RequestTimestamp, r.Id));
    }

    private static IQueryable<RequestRow> InputRequestRows(IQueryable<InputRequestLog> q) =>
        q.Select(r => new RequestRow(r.Id, r.Method, r.Host, r.Path, r.Slug, r.ResponseCode, r.Status, r.RequestTimestamp,
            r.ResponseTimestamp, r.Ip, r.UserId, r.ExceptionName));

    private static IOrderedQueryable<T> NewestFirst<T>(IQueryable<T> q)
        where T : RequestLogBase =>
        q.OrderByDescending(r => r.RequestTimestamp).ThenByDescending(r => r.Id);

    /// <summary>One inbound request with the outbound requests made while serving it.</summary>
    /// <param name="id">The request's id.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The detail, or null when the request is not in the ledger.</returns>
    public async Task<InputRequestDetail?> InputRequestAsync(Guid id, CancellationToken ct)
    {
        var request = await _db.InputRequestLogs.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, ct).ConfigureAwait(false);
        if (request is null)
        {
            return null;
        }

        var outbound = await RequestRows(_db.OutputRequestLogs.AsNoTracking().Where(r => r.InputRequestId == id)
            .OrderBy(r => r.RequestTimestamp).Take(RelatedLimit)).ToListAsync(ct).ConfigureAwait(false);
        return new InputRequestDetail(request, outbound.Select(r => new RelatedRequest(null, r)).ToList());
    }

    /// <summary>One page of outbound requests, newest first.</summary>
    /// <param name="f">The filter (see <see cref="RequestFilter.Parse"/>).</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The page.</returns>
    public async Task<Page<RequestRow>> OutputRequestsAsync(RequestFilter f, CancellationToken ct)
    {
        var q = RequestWhere(_db.OutputRequestLogs.AsNoTracking(), f);
        return f.Search is { } search
            ? await SearchLogAsync(q, LogText.OutputRequests, r => r.Path, r => r.Id, search, NewestFirst, OutputRequestPageAsync, f.Limit, ct).ConfigureAwait(false)
            : await OutputRequestPageAsync(q, f.Limit, ct).ConfigureAwait(false);
    }

    /// <summary>The query of one page of outbound requests without <c>q</c> (<see cref="OutputRequestsAsync"/>; the plan tests read its plan).</summary>
    internal IQueryable<RequestRow> OutputRequestPage(RequestFilter f) =>
        RequestRows(NewestFirst(RequestWhere(_db.OutputRequestLogs.AsNoTracking(), f)).Take(f.Limit + 1));

    private static async Task<Page<RequestRow>> OutputRequestPageAsync(IQueryable<OutputRequestLog> q, int limit, CancellationToken ct)
    {
        var rows = await RequestRows(NewestFirst(q).Take(limit + 1)).ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, limit, r => new Cursor(r.RequestTimestamp, r.Id));
    }

    /// <summary>One outbound request with the inbound request and the task runs it was made in.</summary>
    /// <param name="id">The request's id.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The detail, or null when the request is not in the ledger.</returns>
    public async Task<OutputRequestDetail?> OutputRequestAsync(Guid id, CancellationToken ct)
    {
        var request = await _db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects)
            .FirstOrDefaultAsync(r => r.Id == id, ct).ConfigureAwait(false);
        if (request is null)
        {
            return null;
        }

        RequestRow? input = null;
        if (request.InputRequestId is { } inputId)
        {
            input = await _db.InputRequestLogs.AsNoTracking().Where(r => r.Id == inputId)
                .Select(r => new RequestRow(r.Id, r.Method, r.Host, r.Path, r.Slug, r.ResponseCode, r.Status, r.RequestTimestamp,
                    r.ResponseTimestamp, r.Ip, r.UserId, r.ExceptionName))
                .FirstOrDefaultAsync(ct).ConfigureAwait(false);
        }

        var runIds = request.RelatedObjects.Where(o => o.TaskRunLogId is not null).Select(o => o.TaskRunLogId!.Value).ToList();
        IReadOnlyList<RelatedRun> runs = runIds.Count == 0
            ? []
            : await _db.TaskRunLogs.AsNoTracking().Where(r => runIds.Contains(r.Id))
                .Select(r => new RelatedRun(r.Id, r.TaskId, r.Name, r.State, r.Start)).ToListAsync(ct).ConfigureAwait(false);
        return new OutputRequestDetail(request, input, runs);
    }

    /// <summary>One page of commands, newest first.</summary>
    /// <param name="f">The filter (see <see cref="CommandFilter.Parse"/>).</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The page.</returns>
    public async Task<Page<CommandRow>> CommandsAsync(CommandFilter f, CancellationToken ct)
    {
        var q = CommandWhere(f);
        return f.Search is { } search
            ? await SearchLogAsync(q, LogText.Commands, c => c.Input, c => c.Id, search, NewestFirst, CommandPageAsync, f.Limit, ct).ConfigureAwait(false)
            : await CommandPageAsync(q, f.Limit, ct).ConfigureAwait(false);
    }

    /// <summary>The query of one page of commands without <c>q</c> (<see cref="CommandsAsync"/>; the plan tests read its plan).</summary>
    internal IQueryable<CommandRow> CommandPage(CommandFilter f) => CommandRows(NewestFirst(CommandWhere(f)).Take(f.Limit + 1));

    private IQueryable<CommandLog> CommandWhere(CommandFilter f)
    {
        var q = _db.CommandLogs.AsNoTracking();
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

        if (f.After is { } k)
        {
            q = q.Where(c => c.Start <= k.At && (c.Start < k.At || c.Id.CompareTo(k.Id) < 0));
        }

        return q;
    }

    private static async Task<Page<CommandRow>> CommandPageAsync(IQueryable<CommandLog> q, int limit, CancellationToken ct)
    {
        var rows = await CommandRows(NewestFirst(q).Take(limit + 1)).ToListAsync(ct).ConfigureAwait(false);
        return ToPage(rows, limit, r => new Cursor(r.Start, r.Id));
    }

    private static IQueryable<CommandRow> CommandRows(IQueryable<CommandLog> q) =>
        q.Select(c => new CommandRow(c.Id, c.Name,
            c.Input != null && c.Input.Length > InputPreviewLength ? c.Input.Substring(0, InputPreviewLength) + "…" : c.Input,
            c.Start, c.Stop, c.IsSuccessful, c.ExitCode, c.Host));

    private static IOrderedQueryable<CommandLog> NewestFirst(IQueryable<CommandLog> q) =>
        q.OrderByDescending(c => c.Start).ThenByDescending(c => c.Id);

    /// <summary>One command with the outbound requests it made.</summary>
    /// <param name="id">The command's id.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The detail, or null when the command is not in the ledger.</returns>
    public async Task<CommandDetail?> CommandAsync(Guid id, CancellationToken ct)
    {
        var command = await _db.CommandLogs.AsNoTracking().FirstOrDefaultAsync(c => c.Id == id, ct).ConfigureAwait(false);
        if (command is null)
        {
            return null;
        }

        var outbound = await RelatedRequestsAsync(o => o.CommandLogId == id, ct).ConfigureAwait(false);
        return new CommandDetail(command, outbound);
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

        if (f.After is { } c)
        {
            q = q.Where(r => r.RequestTimestamp <= c.At && (r.RequestTimestamp < c.At || r.Id.CompareTo(c.Id) < 0));
        }

        return q;
    }

    private async Task<IReadOnlyList<RelatedRequest>> RelatedRequestsAsync(
        Expression<Func<OutputRequestRelatedObject, bool>> relation, CancellationToken ct)
    {
        var rows = await _db.OutputRequestRelatedObjects.AsNoTracking().Where(relation)
            .Join(_db.OutputRequestLogs, o => o.OutputRequestId, r => r.Id, (o, r) => new { o.TaskRunLogId, r })
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
        var match = _database.LikeIgnoringCase(LedgerSql.LikePattern(text));
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
