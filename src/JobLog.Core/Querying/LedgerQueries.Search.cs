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

    /// <summary>
    /// One page of the tasks of <paramref name="q"/> (already filtered and after the cursor) that the search finds:
    /// first among the newest <see cref="SearchWindow"/> rows checked one by one (a text that looks rare: the newest
    /// <see cref="RareSearchWindow"/> first, and on to the indexes when none of them has it), and when that does not fill
    /// the page, through the indexes. Both steps find the same rows (docs/search.md).
    /// </summary>
    private async Task<Page<TaskRow>> SearchTasksAsync(IQueryable<TaskLog> q, TaskSearch search, int limit, CancellationToken ct)
    {
        var byDay = _searchIndex && await _database.IsSearchTextPartitionedAsync(_db, ct).ConfigureAwait(false);
        // An id is rare by nature: straight to the indexes.
        if (SearchWindow > 0 && search.Id is null && search.TraceId is null)
        {
            var matches = RowMatches(search, byDay);
            if (search.LooksRare && RareSearchWindow < SearchWindow)
            {
                var few = RareSearchWindow > 0
                    ? await TaskPageAsync(NewestFirst(q).Take(RareSearchWindow).Where(matches), limit, ct).ConfigureAwait(false)
                    : null;
                if (few?.NextCursor is not null)
                {
                    return few;
                }

                if (few is null || few.Items.Count == 0)
                {
                    return await TaskPageAsync(q.Where(MatchingIds(search, byDay)), limit, ct).ConfigureAwait(false);
                }
            }

            var recent = await TaskPageAsync(NewestFirst(q).Take(SearchWindow).Where(matches), limit, ct).ConfigureAwait(false);
            if (recent.NextCursor is not null)
            {
                return recent;
            }

            // A text common enough to have a few matches among the newest rows, but not a page: the window grown to about
            // twice what their density says a page needs (capped). The indexes would list every task that has it: an
            // error text in 1.8% of 10 million tasks was a set of 177,066 ids, 8.5-24.6 s for the page on SQLite, where
            // the newest rows gave it in 12-30 ms (docs/scale.md, "Session 9 (big)").
            if (recent.Items.Count >= WidenAtFound)
            {
                var wider = (int)Math.Min(SearchWindowMax, 2L * SearchWindow * (limit + 1) / recent.Items.Count);
                if (wider > SearchWindow)
                {
                    var page = await TaskPageAsync(NewestFirst(q).Take(wider).Where(matches), limit, ct).ConfigureAwait(false);
                    if (page.NextCursor is not null)
                    {
                        return page;
                    }
                }
            }
        }

        return await TaskPageAsync(q.Where(MatchingIds(search, byDay)), limit, ct).ConfigureAwait(false);
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
