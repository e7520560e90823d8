namespace JobLog.AspNetCore.Dashboard.Queries;

/// <summary>
/// Which tasks a list shows with respect to MassTransit's infrastructure messages (<see cref="TaskLog.IsInternal"/>):
/// the application's own by default; <c>internal=true</c> only MassTransit's; <c>internal=all</c> both.
/// </summary>
internal enum InternalTasks
{
    Hide = 0,
    Only = 1,
    All = 2,
}

/// <summary>Parses the <c>internal</c> filter (dashboard, API and CLI alike).</summary>
internal static class InternalTasksFilter
{
    public static InternalTasks Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "false" or "no" or "hide" => InternalTasks.Hide,
        "true" or "yes" or "only" => InternalTasks.Only,
        "all" or "any" => InternalTasks.All,
        _ => throw new FilterException($"'internal' must be true (MassTransit's own messages only), all or false (the default), not '{value}'."),
    };

    public static IQueryable<TaskLog> Apply(IQueryable<TaskLog> tasks, InternalTasks filter) => filter switch
    {
        InternalTasks.Hide => tasks.Where(t => !t.IsInternal),
        InternalTasks.Only => tasks.Where(t => t.IsInternal),
        _ => tasks,
    };
}
