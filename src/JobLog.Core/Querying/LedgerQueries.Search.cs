using System.Linq.Expressions;
using JobLog.Failures;
using JobLog.Storage.Partitioning;

namespace JobLog.Querying;

/// <summary>The task list's search box (<c>q</c>): text through the databases' text indexes, ids through their indexes (docs/search.md).</summary>
public sealed partial class LedgerQueries
{
    /// <summary>
    /// How many of the newest filtered tasks are first checked row by row (0: never). A common text fills its page
    /// there at once, where the index would list every task that has it; a rare one does not, and goes to the index.
    /// </summary>
    internal int SearchWindow { get; set; } = 2000;

    /// <summary>
    /// The widest the newest-rows step grows to (<see cref="SearchTasksAsync"/>) when <see cref="SearchWindow"/> found
    /// matches but not a page of them.
    /// </summary>
    internal int SearchWindowMax { get; set; } = 50_000;

    /// <summary>
    /// How many of the newest filtered tasks are checked first for a text that looks rare (<see cref="TaskSearch.LooksRare"/>:
    /// an order or customer number); none of them matching, the search goes to the indexes without <see cref="SearchWindow"/>
    /// (0: straight there). At 10 M tasks on PostgreSQL the 2,000 rows' check cost such a text 44-94 ms and found nothing
    /// (docs/scale.md "Session 42 (scale)"); a text that only looked rare matches in these rows and goes on as any other.
    /// </summary>
    internal int RareSearchWindow { get; set; } = 100;

    // The matches the first window must hold for the step to grow: fewer, and the text is rare enough for the indexes.
    private const int WidenAtFound = 3;

    /// <summary>The time one search may read for (<see cref="JobLogOptions.SearchBudget"/>; <see cref="ReadBudget"/>).</summary>
    internal TimeSpan SearchBudget { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The clock of <see cref="SearchBudget"/>.</summary>
    internal TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>Called just before a search's last step (the index, or the scan of a text no index serves): the tests spend the budget there.</summary>
    internal Action<ReadBudget>? BeforeLastStep { get; set; }

    /// <summary>
    /// One page of the tasks of <paramref name="q"/> (already filtered and after the cursor) that the search finds:
    /// first among the newest <see cref="SearchWindow"/> rows checked one by one (a text that looks rare: the newest
    /// <see cref="RareSearchWindow"/> first, and on to the indexes when none of them has it), and when that does not fill
    /// the page, through the indexes. Both steps find the same rows (docs/search.md). Every step reads under
    /// <see cref="SearchBudget"/>; when it runs out, the page is what the last whole window found (<see cref="StoppedAsync"/>).
    /// </summary>
    private async Task<Page<TaskRow>> SearchTasksAsync(IQueryable<TaskLog> q, TaskSearch search, int limit, CancellationToken ct)
    {
        var byDay = _searchIndex && await _database.IsSearchTextPartitionedAsync(_db, ct).ConfigureAwait(false);
        using var budget = new ReadBudget(_db, SearchBudget, Time, ct);
        var matches = RowMatches(search, byDay);
        Page<TaskRow>? seen = null;
        var seenRows = 0;

        // An id is rare by nature: straight to the indexes.
        if (SearchWindow > 0 && search.Id is null && search.TraceId is null)
        {
            if (search.LooksRare && RareSearchWindow < SearchWindow)
            {
                var few = RareSearchWindow > 0
                    ? await budget.ReadAsync(t => TaskPageAsync(NewestFirst(q).Take(RareSearchWindow).Where(matches), limit, t)).ConfigureAwait(false)
                    : null;
                if (budget.RanOut)
                {
                    return await StoppedAsync(q, NewestFirst, TaskPageAsync, null, 0, budget, ct).ConfigureAwait(false);
                }

                if (few?.NextCursor is not null)
                {
                    return few;
                }

                if (few is null || few.Items.Count == 0)
                {
                    return await LastStepAsync(few, RareSearchWindow).ConfigureAwait(false);
                }
            }

            var recent = await budget.ReadAsync(t => TaskPageAsync(NewestFirst(q).Take(SearchWindow).Where(matches), limit, t)).ConfigureAwait(false);
            if (recent is null)
            {
                return await StoppedAsync(q, NewestFirst, TaskPageAsync, null, 0, budget, ct).ConfigureAwait(false);
            }

            if (recent.NextCursor is not null)
            {
                return recent;
            }

            (seen, seenRows) = (recent, SearchWindow);

            // A text common enough to have a few matches among the newest rows, but not a page: the window grown to about
            // twice what their density says a page needs (capped). The indexes would list every task that has it: an
            // error text in 1.8% of 10 million tasks was a set of 177,066 ids, 8.5-24.6 s for the page on SQLite, where
            // the newest rows gave it in 12-30 ms (docs/scale.md, "Session 9 (big)").
            if (recent.Items.Count >= WidenAtFound)
            {
                var wider = (int)Math.Min(SearchWindowMax, 2L * SearchWindow * (limit + 1) / recent.Items.Count);
                if (wider > SearchWindow)
                {
                    var page = await budget.ReadAsync(t => TaskPageAsync(NewestFirst(q).Take(wider).Where(matches), limit, t)).ConfigureAwait(false);
                    if (page is null)
                    {
                        return await StoppedAsync(q, NewestFirst, TaskPageAsync, seen, seenRows, budget, ct).ConfigureAwait(false);
                    }

                    if (page.NextCursor is not null)
                    {
                        return page;
                    }

                    (seen, seenRows) = (page, wider);
                }
            }
        }

        return await LastStepAsync(seen, seenRows).ConfigureAwait(false);

        // The indexes; or, for a text no index of the database serves (PostgreSQL: no letter or digit, no trigram), the
        // rows newest first checked one by one until a page is found, rather than a read of the whole text table.
        async Task<Page<TaskRow>> LastStepAsync(Page<TaskRow>? window, int windowRows)
        {
            var scan = search.Id is null && search.TraceId is null && _searchIndex
                && search.Characters >= TaskSearch.IndexedLength && !_database.IndexServes(search.Text);
            BeforeLastStep?.Invoke(budget);
            var page = scan
                ? await budget.ReadAsync(t => TaskPageAsync(q.Where(matches), limit, t)).ConfigureAwait(false)
                : await budget.ReadIndexAsync(t => TaskPageAsync(q.Where(MatchingIds(search, byDay)), limit, t)).ConfigureAwait(false);
            return page ?? await StoppedAsync(q, NewestFirst, TaskPageAsync, window, windowRows, budget, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The page of a search whose budget ran out: the matches of the widest window it read whole (<paramref name="window"/>,
    /// the newest <paramref name="windowRows"/> rows of <paramref name="q"/>), flagged (<see cref="Page{T}.SearchStopped"/>),
    /// with the cursor of the window's oldest row, from which a next search goes on (older rows only). A window that held
    /// every row of <paramref name="q"/> is the whole answer: not flagged. Read without the budget (a walk of the time index).
    /// </summary>
    private async Task<Page<TRow>> StoppedAsync<T, TRow>(
        IQueryable<T> q, Func<IQueryable<T>, IOrderedQueryable<T>> newestFirst, Func<IQueryable<T>, int, CancellationToken, Task<Page<TRow>>> page,
        Page<TRow>? window, int windowRows, ReadBudget budget, CancellationToken ct)
    {
        if (window is null || windowRows == 0)
        {
            return new Page<TRow>([], null) { SearchStopped = new SearchStop(budget.Budget, null) };
        }

        // The window's oldest row, and a next one if there is any: the page of one row has the cursor after it then.
        var edge = await page(newestFirst(q).Skip(windowRows - 1).Take(2), 1, ct).ConfigureAwait(false);
        if (edge.NextCursor is not { } cursor)
        {
            return window;
        }

        return new Page<TRow>(window.Items, cursor) { SearchStopped = new SearchStop(budget.Budget, Cursor.Parse(cursor).At) };
    }

    /// <summary>
    /// Tasks whose Input, TaskKwargs or a run's ErrorMessage contains the text (case-insensitive), and, when the text is
    /// an id, the tasks that carry it: one id set, each part answered from an index, so the list's time order and
    /// keyset paging stay as they are. <paramref name="byDay"/>: the search's table is partitioned by day
    /// (<see cref="Storage.LedgerDatabase.IsSearchTextPartitionedAsync"/>).
    /// </summary>
    private Expression<Func<TaskLog, bool>> MatchingIds(TaskSearch search, bool byDay = false)
    {
        var ids = (_searchIndex && search.Characters >= TaskSearch.IndexedLength ? _database.TasksContaining(_db, search.Text, search.Key, byDay) : null)
            ?? TextMatches(search);
        if (search.Id is { } id)
        {
            ids = ids
                .Union(_db.TaskLogs.Where(t => t.Id == id || t.CorrelationId == id || t.ConversationId == id).Select(t => t.Id))
                .Union(_db.TaskRunLogs.Where(r => r.Id == id).Select(r => r.TaskId));
        }

        if (search.TraceId is { } traceId)
        {
            ids = ids.Union(_db.TaskLogs.Where(t => t.TraceId == traceId).Select(t => t.Id));
        }

        return t => ids.Contains(t.Id);
    }

    /// <summary>The ids of the tasks of <paramref name="q"/> that the search finds (the plan tests read its plan).</summary>
    internal IQueryable<Guid> MatchingIdsQuery(string q, bool byDay = false) => _db.TaskLogs.Where(MatchingIds(TaskSearch.Parse(q), byDay)).Select(t => t.Id);

    /// <summary>
    /// The text part of <see cref="MatchingIds"/> where the database has no query of its own for it
    /// (<see cref="Storage.LedgerDatabase.TasksContaining"/>): the search index off, a text too short for trigrams, or
    /// one with a line feed on PostgreSQL. Scans.
    /// </summary>
    private IQueryable<Guid> TextMatches(TaskSearch search) =>
        _db.TaskLogs.Where(ContainsAny<TaskLog>(search.Text, t => t.Input, t => t.TaskKwargs))
            .Select(t => t.Id)
            .Union(_db.TaskRunLogs.Where(Contains(s_errorShown, search.Text)).Select(r => r.TaskId));

    /// <summary>
    /// A run's error as it is shown (<see cref="FailureSignature.Unstated"/>), in a form both databases translate: the
    /// search matches that text, never JobLog's <c>[failure group: …]</c> first line, a grouping marker (a search for
    /// <c>failure group</c> found every failure that had one). The indexes hold the text kept; their queries check the
    /// same (<c>SqliteSearch</c>, <c>PostgreSqlSearch</c>).
    /// </summary>
    private static readonly Expression<Func<TaskRunLog, string?>> s_errorShown = r =>
        r.ErrorMessage != null && r.ErrorMessage.IndexOf("\n") > 0
            ? r.ErrorMessage.Substring(0, FailureSignature.StatedPrefix.Length) == FailureSignature.StatedPrefix
                && (r.ErrorMessage.Substring(r.ErrorMessage.IndexOf("\n") - 1, 1) == "]" || r.ErrorMessage.Substring(r.ErrorMessage.IndexOf("\n") - 2, 2) == "]\r")
                ? r.ErrorMessage.Substring(r.ErrorMessage.IndexOf("\n") + 1)
                : r.ErrorMessage
            : r.ErrorMessage;

    /// <summary>
    /// The text part of <see cref="MatchingIds"/> on one row: for the newest rows, read in time order.
    /// <paramref name="byDay"/>: the search's table is partitioned by day (<see cref="Storage.LedgerDatabase.IsSearchTextPartitionedAsync"/>).
    /// </summary>
    private Expression<Func<TaskLog, bool>> RowMatches(TaskSearch search, bool byDay = false)
    {
        Expression<Func<TaskLog, bool>> errors;
        if ((_searchIndex ? _database.TasksWithErrorContaining(_db, search.Text, byDay) : null) is { } withError)
        {
            // The equality finds the task's rows by index; the redundant range (a condition on the outer row that is not an
            // equality) keeps PostgreSQL from hashing every task with the error instead, as it does for an EXISTS it
            // expects to run for thousands of rows (the window's LIMIT does not enter that estimate). Partitioned by day,
            // the rows are looked up in the task's day only (one partition, not one probe per day).
            errors = byDay
                ? t => withError.Any(id => id == t.Id && id.CompareTo(t.Id) <= 0 && PartitionPruning.DayOf(id, t.Id))
                : t => withError.Any(id => id == t.Id && id.CompareTo(t.Id) <= 0);
        }
        else
        {
            var failed = _db.TaskRunLogs.Where(Contains(s_errorShown, search.Text));
            errors = t => failed.Any(r => r.TaskId == t.Id);
        }

        return AnyOf<TaskLog>([ContainsAny<TaskLog>(search.Text, t => t.Input, t => t.TaskKwargs), errors]);
    }

    /// <summary><see cref="Contains{T}"/> over several columns of one row, OR-ed.</summary>
    private Expression<Func<T, bool>> ContainsAny<T>(string text, params Expression<Func<T, string?>>[] columns) =>
        AnyOf(columns.Select(column => Contains(column, text)));

    private static Expression<Func<T, bool>> AnyOf<T>(IEnumerable<Expression<Func<T, bool>>> predicates)
    {
        var row = Expression.Parameter(typeof(T), "row");
        Expression? body = null;
        foreach (var predicate in predicates)
        {
            var rebased = new ReplaceParameter(predicate.Parameters[0], row).Visit(predicate.Body);
            body = body is null ? rebased : Expression.OrElse(body, rebased);
        }

        return Expression.Lambda<Func<T, bool>>(body ?? Expression.Constant(false), row);
    }
}
