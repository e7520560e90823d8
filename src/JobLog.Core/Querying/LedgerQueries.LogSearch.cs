using System.Linq.Expressions;
using JobLog.Storage;

namespace JobLog.Querying;

/// <summary>
/// The request and command lists' search box (<c>q</c>): a case-insensitive substring of the requests' path or the
/// commands' arguments, through the databases' trigram indexes of that column (docs/search.md, "Requests and commands").
/// </summary>
public sealed partial class LedgerQueries
{
    /// <summary>
    /// One page of the rows of <paramref name="q"/> (already filtered and after the cursor) whose <paramref name="column"/>
    /// contains <paramref name="text"/>: first among the newest <see cref="SearchWindow"/> rows checked one by one (a
    /// common text, such as a path segment every request has, fills its page there, where the index would list every
    /// row), then through the index. Both steps find the rows the plain <c>LIKE '%…%'</c> finds; both read under
    /// <see cref="SearchBudget"/>, and a search that runs out answers with what its last whole window found (<see cref="StoppedAsync"/>).
    /// </summary>
    private async Task<Page<TRow>> SearchLogAsync<T, TRow>(
        IQueryable<T> q, LogText log, Expression<Func<T, string?>> column, Expression<Func<T, Guid>> id, string text,
        Func<IQueryable<T>, IOrderedQueryable<T>> newestFirst, Func<IQueryable<T>, int, CancellationToken, Task<Page<TRow>>> page,
        int limit, CancellationToken ct)
    {
        using var budget = new ReadBudget(_db, SearchBudget, Time, ct);
        Page<TRow>? seen = null;
        var seenRows = 0;
        if (SearchWindow > 0)
        {
            var recent = await budget.ReadAsync(t => page(newestFirst(q).Take(SearchWindow).Where(Contains(column, text)), limit, t)).ConfigureAwait(false);
            if (recent is null)
            {
                return await StoppedAsync(q, newestFirst, page, null, 0, budget, ct).ConfigureAwait(false);
            }

            if (recent.NextCursor is not null)
            {
                return recent;
            }

            (seen, seenRows) = (recent, SearchWindow);

            // A text with a few matches among the newest rows but not a page: the window grown to what their density says a
            // page needs, as the tasks' search does (SearchTasksAsync). PostgreSQL's planner takes the GIN index even for a
            // path segment in a third of the requests (`/api/orders`: a bitmap of 83,000 rows, 1.9 s at 1 M).
            if (recent.Items.Count >= WidenAtFound)
            {
                var wider = (int)Math.Min(SearchWindowMax, 2L * SearchWindow * (limit + 1) / recent.Items.Count);
                if (wider > SearchWindow)
                {
                    var widened = await budget.ReadAsync(t => page(newestFirst(q).Take(wider).Where(Contains(column, text)), limit, t)).ConfigureAwait(false);
                    if (widened is null)
                    {
                        return await StoppedAsync(q, newestFirst, page, seen, seenRows, budget, ct).ConfigureAwait(false);
                    }

                    if (widened.NextCursor is not null)
                    {
                        return widened;
                    }

                    (seen, seenRows) = (widened, wider);
                }
            }
        }

        BeforeLastStep?.Invoke(budget);
        var found = await budget.ReadIndexAsync(t => page(q.Where(LogMatches(log, column, id, text)), limit, t)).ConfigureAwait(false);
        return found ?? await StoppedAsync(q, newestFirst, page, seen, seenRows, budget, ct).ConfigureAwait(false);
    }

    /// <summary>The ids of the inbound requests the index step of <c>q</c> finds (the plan tests read its plan).</summary>
    internal IQueryable<Guid> InputRequestMatchesQuery(string q) =>
        _db.InputRequestLogs.Where(LogMatches<InputRequestLog>(LogText.InputRequests, r => r.Path, r => r.Id, q)).Select(r => r.Id);

    /// <summary>
    /// <see cref="Contains{T}"/> of <paramref name="text"/> in <paramref name="column"/>, answered from the database's
    /// trigram index of the log when there is one and the text has a trigram: SQLite's FTS5 table gives the ids
    /// (<see cref="LedgerDatabase.LogContaining"/>), PostgreSQL's GIN index on the column is asked for the text's key
    /// (<see cref="LedgerDatabase.KeyedLikeIgnoringCase"/>). A text of one or two characters scans, as before.
    /// </summary>
    internal Expression<Func<T, bool>> LogMatches<T>(LogText log, Expression<Func<T, string?>> column, Expression<Func<T, Guid>> id, string text)
    {
        var search = new TaskSearch(text, null, null);
        if (!_searchIndex || search.Characters < TaskSearch.IndexedLength || !_database.IndexServes(text))
        {
            return Contains(column, text);
        }

        if (_database.LogContaining(_db, log, text, search.Key) is { } ids)
        {
            Expression<Func<Guid, bool>> found = g => ids.Contains(g);
            return Expression.Lambda<Func<T, bool>>(new ReplaceParameter(found.Parameters[0], id.Body).Visit(found.Body), id.Parameters);
        }

        if (search.Key is { } key && _database.KeyedLikeIgnoringCase(LedgerSql.LikePattern(text), LedgerSql.LikePattern(key)) is { } keyed)
        {
            return Expression.Lambda<Func<T, bool>>(new ReplaceParameter(keyed.Parameters[0], column.Body).Visit(keyed.Body), column.Parameters);
        }

        return Contains(column, text);
    }
}
