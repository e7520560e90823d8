using System.Globalization;
using JobLog.Failures;

namespace JobLog.Querying;

/// <summary>
/// Filters of the open failures (failed tasks no operator resolved): <c>by</c> (<c>exception</c>, <c>type</c> or
/// <c>queue</c>), <c>group</c> (a group's id), and the task list's <c>name</c>, <c>queue</c>, <c>internal</c>,
/// <c>from</c>, <c>to</c>, <c>since</c>, <c>q</c> (a substring of the error or the message), <c>cursor</c> and
/// <c>limit</c>. The same names on the dashboard, in the JSON API and in the CLI.
/// </summary>
public sealed record FailureFilter : ListFilter
{
    /// <summary>How failures are grouped (<c>by</c>); default <see cref="FailureGrouping.Exception"/>.</summary>
    public FailureGrouping By { get; init; }

    /// <summary>Only the failures of this group (<c>group</c>, an id from <see cref="FailureGroupKey.Id"/>); null for every group.</summary>
    public string? Group { get; init; }

    /// <summary>Failures of tasks of exactly this name (<c>name</c>); null for every name.</summary>
    public string? Name { get; init; }

    /// <summary>Failures in this queue (<c>queue</c>: the consuming queue, or the one the task was sent to); null for every queue.</summary>
    public string? Queue { get; init; }

    /// <summary>MassTransit's infrastructure messages: hidden unless <c>internal=true|all</c>.</summary>
    public InternalTasks Internal { get; init; }

    /// <summary>Reads the failure filters by name.</summary>
    /// <param name="get">The values by name.</param>
    /// <param name="now">The current time (UTC), for <c>since</c>.</param>
    /// <returns>The filter.</returns>
    /// <exception cref="FilterException">When a value cannot be understood.</exception>
    public static FailureFilter Parse(FilterSource get, DateTime now)
    {
        ArgumentNullException.ThrowIfNull(get);
        var group = Text(get("group"));
        if (group is not null && (group.Length != 16 || !group.All(char.IsAsciiHexDigitLower)))
        {
            throw new FilterException(GroupIdError(group));
        }

        return ParseCommon(new FailureFilter
        {
            By = EnumValue<FailureGrouping>(get("by"), "by") ?? FailureGrouping.Exception,
            Group = group,
            Name = Text(get("name")),
            Queue = Text(get("queue")),
            Internal = InternalTasksFilter.Parse(get("internal")),
        }, get, now);
    }

    /// <summary>
    /// Reads the filters of one group's failures, the group named apart from the others (the dashboard's
    /// <c>failures/groups/{id}</c>): there a blank id is an error, not "every group" as an empty <c>group=</c> is in a
    /// query string, or the group's page would list every open failure and act on all of them.
    /// </summary>
    /// <exception cref="FilterException">When <paramref name="group"/> is not a group id, or a value cannot be understood.</exception>
    internal static FailureFilter ParseGroup(string group, FilterSource get, DateTime now)
    {
        ArgumentNullException.ThrowIfNull(get);
        var filter = Parse(name => name == "group" ? group : get(name), now);
        return filter.Group is null ? throw new FilterException(GroupIdError(group)) : filter;
    }

    private static string GroupIdError(string group) => $"'group' must be a group id of 16 lower-case hex digits, not '{FilterException.Shown(group)}'.";

    /// <summary>The filter as the text kept with an action (<see cref="FailureActionRequest.Selection"/>), e.g. <c>by=exception group=3f2a… queue=orders</c>.</summary>
    /// <returns>The non-default filter values by name.</returns>
    public string Describe()
    {
        var parts = new List<string> { "by=" + By.ToString().ToLowerInvariant() };
        void Add(string name, string? value)
        {
            if (value is not null)
            {
                parts.Add(name + "=" + value);
            }
        }

        Add("group", Group);
        Add("name", Name);
        Add("queue", Queue);
        Add("internal", Internal == InternalTasks.Hide ? null : Internal.ToString().ToLowerInvariant());
        Add("from", From?.ToString("O", CultureInfo.InvariantCulture));
        Add("to", To?.ToString("O", CultureInfo.InvariantCulture));
        Add("q", Search);
        return string.Join(' ', parts);
    }
}

/// <summary>A group of open failures.</summary>
/// <param name="Id">The group's stable id (<see cref="FailureGroupKey.Id"/>).</param>
/// <param name="By">How it groups.</param>
/// <param name="Key">The value its failures share (the signature, the task name, or the queue).</param>
/// <param name="ExceptionType">The exception type of its newest failure.</param>
/// <param name="Count">How many open failures it has.</param>
/// <param name="FirstSeen">Its oldest failure (UTC).</param>
/// <param name="LastSeen">Its newest failure (UTC).</param>
/// <param name="SampleTaskId">Its newest failure's task.</param>
/// <param name="SampleError">Its newest failure's error, cut to 1,000 characters.</param>
/// <param name="Trend">Failures per hour over the last 24 hours, oldest hour first (24 values).</param>
public sealed record FailureGroup(
    string Id,
    FailureGrouping By,
    string Key,
    string ExceptionType,
    int Count,
    DateTime FirstSeen,
    DateTime LastSeen,
    Guid SampleTaskId,
    string? SampleError,
    IReadOnlyList<int> Trend);

/// <summary>The open failure groups matching a filter, most failures first.</summary>
/// <param name="Groups">The groups (at most the filter's limit).</param>
/// <param name="Total">Open failures matching the filter.</param>
/// <param name="Truncated">
/// True when there were more open failures than <see cref="LedgerQueries.MaxFailuresScanned"/>: the groups count the
/// newest ones only.
/// </param>
public sealed record FailureGroups(IReadOnlyList<FailureGroup> Groups, int Total, bool Truncated);

/// <summary>One open failure (a row of a group's page).</summary>
/// <param name="TaskId">The failed task (its MassTransit MessageId).</param>
/// <param name="Name">The task name.</param>
/// <param name="QueueName">The queue whose consumer failed (or the one the task was sent to).</param>
/// <param name="FailedAt">When it failed (UTC): the task's stop, else its dispatch.</param>
/// <param name="GroupId">Its group under the filter's <c>by</c>.</param>
/// <param name="Signature">Its exception type and first frame of the application's code.</param>
/// <param name="Error">Its error, cut to 1,000 characters.</param>
public sealed record FailureRow(Guid TaskId, string Name, string? QueueName, DateTime FailedAt, string GroupId, string Signature, string? Error);
