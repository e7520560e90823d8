using System.Linq.Expressions;

namespace JobLog.Querying;

/// <summary>The task list's search box (<c>q</c>): text through the databases' text indexes, ids through their indexes (docs/search.md).</summary>
public sealed partial class LedgerQueries
{
    /// <summary>
    /// Tasks whose Input, TaskKwargs or a run's ErrorMessage contains the text (case-insensitive), and, when the text is
    /// an id, the tasks that carry it: one id set, each part answered from an index, so the list's time order and
    /// keyset paging stay as they are.
    /// </summary>
    private IQueryable<TaskLog> WhereSearch(IQueryable<TaskLog> q, TaskSearch search)
    {
        var ids = (search.Characters >= TaskSearch.IndexedLength ? _database.TasksContaining(_db, search.Text) : null)
            ?? SubstringIds(search.Text);
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

        return q.Where(t => ids.Contains(t.Id));
    }

    /// <summary>The substring search as LIKE: PostgreSQL's trigram indexes answer it; on SQLite it scans (texts shorter than the trigram).</summary>
    private IQueryable<Guid> SubstringIds(string text) =>
        _db.TaskLogs.Where(ContainsAny<TaskLog>(text, t => t.Input, t => t.TaskKwargs)).Select(t => t.Id)
            .Union(_db.TaskRunLogs.Where(ContainsAny<TaskRunLog>(text, r => r.ErrorMessage)).Select(r => r.TaskId));

    /// <summary><see cref="Contains{T}"/> over several columns of one row, OR-ed.</summary>
    private Expression<Func<T, bool>> ContainsAny<T>(string text, params Expression<Func<T, string?>>[] columns)
    {
        var row = Expression.Parameter(typeof(T), "row");
        Expression? body = null;
        foreach (var column in columns)
        {
            var one = Contains(column, text);
            var rebased = new ReplaceParameter(one.Parameters[0], row).Visit(one.Body);
            body = body is null ? rebased : Expression.OrElse(body, rebased);
        }

        return Expression.Lambda<Func<T, bool>>(body ?? Expression.Constant(false), row);
    }
}
