using System.Globalization;
using JobLog.Retention;

namespace JobLog.Querying;

/// <summary>A filter value that cannot be understood; pages show it, the API answers 400, the CLI exits with 2.</summary>
/// <param name="message">What is wrong with the value, for the user.</param>
public sealed class FilterException(string message) : Exception(message)
{
    /// <summary>The most of a value an error shows back: 100 characters.</summary>
    internal const int ShownLength = 100;

    /// <summary>
    /// A value as an error shows it back: cut at <see cref="ShownLength"/> characters, with its length (a query string
    /// or an argument can hold a megabyte, and the 400 said all of it back).
    /// </summary>
    internal static string Shown(string? value)
    {
        if (value is null || value.Length <= ShownLength)
        {
            return value ?? "";
        }

        var cut = char.IsHighSurrogate(value[ShownLength - 1]) ? ShownLength - 1 : ShownLength;
        return string.Create(CultureInfo.InvariantCulture, $"{value[..cut]}… ({value.Length:N0} characters)");
    }
}

/// <summary>
/// A keyset position: the (time, id) of the last row of a page. Rows are ordered newest first by (time, id), so the
/// next page is "strictly before this pair" and is read from the time index whatever the page number.
/// </summary>
/// <param name="At">The time of the last row (UTC).</param>
/// <param name="Id">The id of the last row (the tie-break).</param>
public readonly record struct Cursor(DateTime At, Guid Id)
{
    /// <summary>The cursor as the text pages, the API and the CLI pass on (<c>ticks-id</c>).</summary>
    /// <returns>The text that <see cref="Parse"/> reads back.</returns>
    public override string ToString() => At.Ticks.ToString(CultureInfo.InvariantCulture) + "-" + Id.ToString("N");

    /// <summary>Reads a cursor written by <see cref="ToString"/>.</summary>
    /// <param name="text">The cursor text.</param>
    /// <returns>The position.</returns>
    /// <exception cref="FilterException">When <paramref name="text"/> is not a cursor.</exception>
    public static Cursor Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash > 0
            && long.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
            && ticks >= DateTime.MinValue.Ticks && ticks <= DateTime.MaxValue.Ticks
            && Guid.TryParseExact(text.AsSpan(dash + 1), "N", out var id))
        {
            return new Cursor(new DateTime(ticks, DateTimeKind.Utc), id);
        }

        throw new FilterException("The cursor is not valid; start again from the first page.");
    }
}

/// <summary>One page of rows and the cursor of the next one (null on the last page).</summary>
/// <typeparam name="T">The row type.</typeparam>
/// <param name="Items">The rows, newest first.</param>
/// <param name="NextCursor">The <c>cursor</c> value of the next page; null on the last page.</param>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor)
{
    /// <summary>
    /// Set when a search (<c>q</c>) ran out of its read budget (<see cref="JobLogOptions.SearchBudget"/>): <see cref="Items"/>
    /// are the matches among the rows it checked, and <see cref="NextCursor"/>, when set, searches on from the oldest of them.
    /// Null when the search read all it had to.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public SearchStop? SearchStopped { get; init; }
}

/// <summary>A search (<c>q</c>) that ran out of its read budget before it had read all it had to (docs/search.md, "The read budget").</summary>
/// <param name="Budget">The budget it had (<see cref="JobLogOptions.SearchBudget"/>).</param>
/// <param name="SearchedBackTo">
/// The time of the oldest row it checked (UTC; every row newer than it, within the filter, was checked); null when it
/// checked none whole. The page's cursor, when set, goes on from there.
/// </param>
public sealed record SearchStop(TimeSpan Budget, DateTime? SearchedBackTo)
{
    /// <summary>The notice the dashboard and the CLI show (plain text; encode it for HTML).</summary>
    /// <param name="rows">What the rows are: <c>tasks</c>, <c>requests</c>, <c>commands</c>.</param>
    /// <returns>The notice.</returns>
    public string Notice(string rows) =>
        $"The search stopped after {FormatBudget(Budget)}; "
        + (SearchedBackTo is { } at
            ? $"it searched {rows} back to {at.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture)} UTC. Narrow it with a time range, a name or a state, or search older."
            : $"it found no {rows} in that time. Narrow it with a time range, a name or a state.");

    private static string FormatBudget(TimeSpan budget) =>
        budget.TotalSeconds >= 1
            ? budget.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + " s"
            : budget.TotalMilliseconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + " ms";
}

/// <summary>Reads filter values by name from a query string or command-line options (the same names everywhere).</summary>
/// <param name="name">The filter's name (<c>state</c>, <c>since</c>, <c>q</c>, <c>cursor</c>, ...).</param>
/// <returns>The value, or null (or blank) when absent.</returns>
public delegate string? FilterSource(string name);

/// <summary>
/// Filters shared by every list: a time range, a text search, the page position and size. The same names are read
/// from the dashboard's query string, the JSON API and the CLI's options (<c>from</c>, <c>to</c>, <c>since</c>,
/// <c>q</c>, <c>cursor</c>, <c>limit</c>).
/// </summary>
public abstract record ListFilter
{
    /// <summary>The page size when <c>limit</c> is not given: 50.</summary>
    public const int DefaultLimit = 50;

    /// <summary>The largest page size: 500.</summary>
    public const int MaxLimit = 500;

    /// <summary>Only the filters of this assembly derive from this one.</summary>
    private protected ListFilter()
    {
    }

    /// <summary>The longest free-text search (<c>q</c>): 200 characters.</summary>
    public const int MaxSearchLength = 200;

    /// <summary>Rows at or after this time (UTC; <c>from</c>, or now minus <c>since</c> when later); null for no bound.</summary>
    public DateTime? From { get; init; }

    /// <summary>Rows before this time (UTC; <c>to</c>); null for no bound.</summary>
    public DateTime? To { get; init; }

    /// <summary>
    /// A case-insensitive substring of the row's text (<c>q</c>); null for none. Tasks: of the Input, the message
    /// (TaskKwargs) or a run's ErrorMessage, answered from a text index, and also an id (message, correlation,
    /// conversation, run or trace id) when the text is one (docs/search.md). Requests: of the path; commands: of the input.
    /// </summary>
    public string? Search { get; init; }

    /// <summary>Rows strictly after this position in the newest-first order (<c>cursor</c>); null for the first page.</summary>
    public Cursor? After { get; init; }

    /// <summary>The page size, 1 to <see cref="MaxLimit"/> (<c>limit</c>); default <see cref="DefaultLimit"/>.</summary>
    public int Limit { get; init; } = DefaultLimit;

    /// <summary>The relative period the user chose (<c>since=1h</c>), kept to redraw the form.</summary>
    public string? Since { get; init; }

    private protected static T ParseCommon<T>(T filter, FilterSource get, DateTime now)
        where T : ListFilter
    {
        DateTime? from = Time(get("from"), "from");
        var since = Text(get("since"));
        if (since is not null)
        {
            if (!DurationText.TryParse(since, out var period))
            {
                throw new FilterException($"'since' must look like 15m, 1h, 24h, 7d or 2w, not '{FilterException.Shown(since)}'.");
            }

            var sinceFrom = now - period;
            from = from is { } f && f > sinceFrom ? f : sinceFrom;
        }

        var limit = DefaultLimit;
        if (Text(get("limit")) is { } l && (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
        {
            throw new FilterException($"'limit' must be a number from 1 to {MaxLimit}.");
        }

        var search = Text(get("q"));
        if (search is { Length: > MaxSearchLength })
        {
            throw new FilterException($"'q' must be at most {MaxSearchLength} characters.");
        }

        return filter with
        {
            From = from,
            To = Time(get("to"), "to"),
            Since = since,
            Search = search,
            After = Text(get("cursor")) is { } c ? Cursor.Parse(c) : null,
            Limit = limit,
        };
    }

    /// <summary>
    /// A value, trimmed; null when blank. A NUL character is refused: the ledger never stores one (the writer removes
    /// it), PostgreSQL refuses it in a parameter and SQLite's full-text query ends its string there. So is a lone surrogate
    /// (text that is no Unicode, which no request or command line can carry: a caller's string): Npgsql cannot encode it
    /// (an <see cref="System.Text.EncoderFallbackException"/>, not an answer).
    /// </summary>
    private protected static string? Text(string? value) =>
        string.IsNullOrWhiteSpace(value) ? null
        : value.Contains('\0', StringComparison.Ordinal) ? throw new FilterException("A filter value must not contain a NUL character (U+0000).")
        : LoneSurrogate(value) is >= 0 and var at
            ? throw new FilterException(string.Create(CultureInfo.InvariantCulture, $"A filter value must be Unicode text: it has a lone surrogate (U+{(int)value[at]:X4}) at character {at + 1}."))
        : value.Trim();

    /// <summary>Where <paramref name="value"/> has a surrogate that is not half of a pair; -1 when none.</summary>
    private static int LoneSurrogate(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(value[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>One value, by name only: a number or a combination (<c>3</c>, <c>failed,expired</c> as flags) is refused.</summary>
    private protected static TEnum? EnumValue<TEnum>(string? value, string name)
        where TEnum : struct, Enum
    {
        var text = Text(value);
        return text is null ? null : EnumName<TEnum>(text, name, text);
    }

    /// <summary>
    /// A comma-separated list of values by name (<c>failed,expired</c>), each parsed on its own, never combined as
    /// flags; numbers and unknown names are refused. Null when absent.
    /// </summary>
    private protected static IReadOnlyList<TEnum>? EnumList<TEnum>(string? value, string name)
        where TEnum : struct, Enum
    {
        var text = Text(value);
        if (text is null)
        {
            return null;
        }

        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        return parts.Length > Enum.GetValues<TEnum>().Length * 2
            ? throw new FilterException($"'{name}' lists too many values.")
            : parts.Select(part => EnumName<TEnum>(part, name, text)).Distinct().ToList();
    }

    private static TEnum EnumName<TEnum>(string text, string name, string whole)
        where TEnum : struct, Enum
    {
        var bare = text.Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal);
        if (bare.Length > 0 && bare.All(char.IsAsciiLetter) && Enum.TryParse<TEnum>(bare, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed))
        {
            return parsed;
        }

        throw new FilterException($"'{name}' must be one of {string.Join(", ", Enum.GetNames<TEnum>().Select(n => n.ToLowerInvariant()))}, not '{FilterException.Shown(whole)}'.");
    }

    private static DateTime? Time(string? value, string name)
    {
        var text = Text(value);
        if (text is null)
        {
            return null;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AllowWhiteSpaces, out var parsed))
        {
            return parsed.UtcDateTime;
        }

        throw new FilterException($"'{name}' must be a date and time such as 2026-03-01T08:00 (UTC unless an offset is given), not '{FilterException.Shown(text)}'.");
    }
}

/// <summary>Filters of the task list (<c>state</c>, <c>name</c>, <c>queue</c>, <c>internal</c> and the common ones).</summary>
public sealed record TaskFilter : ListFilter
{
    /// <summary>Tasks in any of these states (<c>state=failed,expired</c>); null for every state.</summary>
    public IReadOnlyList<TaskState>? States { get; init; }

    /// <summary>Tasks of exactly this name (<c>name</c>); null for every name.</summary>
    public string? Name { get; init; }

    /// <summary>Tasks sent to, or consumed from, this queue or exchange (<c>queue</c>); null for every queue.</summary>
    public string? Queue { get; init; }

    /// <summary>MassTransit's infrastructure messages: hidden unless <c>internal=true|all</c>.</summary>
    public InternalTasks Internal { get; init; }

    /// <summary>Reads the task filters by name.</summary>
    /// <param name="get">The values by name.</param>
    /// <param name="now">The current time (UTC), for <c>since</c>.</param>
    /// <returns>The filter.</returns>
    /// <exception cref="FilterException">When a value cannot be understood.</exception>
    public static TaskFilter Parse(FilterSource get, DateTime now) =>
        ParseCommon(new TaskFilter
        {
            States = EnumList<TaskState>(get("state"), "state"),
            Name = Text(get("name")),
            Queue = Text(get("queue")),
            Internal = InternalTasksFilter.Parse(get("internal")),
        }, get, now);
}

/// <summary>Filters of the inbound and outbound request lists (<c>status</c>, <c>method</c>, <c>host</c>, <c>slug</c>, <c>ip</c>, <c>user</c>).</summary>
public sealed record RequestFilter : ListFilter
{
    /// <summary>Requests with this status (<c>status</c>); null for every status.</summary>
    public RequestLogStatus? Status { get; init; }

    /// <summary>Requests with this HTTP method, upper case (<c>method</c>); null for every method.</summary>
    public string? Method { get; init; }

    /// <summary>Requests to this host (<c>host</c>); null for every host.</summary>
    public string? Host { get; init; }

    /// <summary>Requests with this slug (<c>slug</c>); null for every slug.</summary>
    public string? Slug { get; init; }

    /// <summary>Inbound only: the client IP.</summary>
    public string? Ip { get; init; }

    /// <summary>Inbound only: the user id.</summary>
    public string? User { get; init; }

    /// <summary>Reads the request filters by name.</summary>
    /// <param name="get">The values by name.</param>
    /// <param name="now">The current time (UTC), for <c>since</c>.</param>
    /// <returns>The filter.</returns>
    /// <exception cref="FilterException">When a value cannot be understood.</exception>
    public static RequestFilter Parse(FilterSource get, DateTime now) =>
        ParseCommon(new RequestFilter
        {
            Status = EnumValue<RequestLogStatus>(get("status"), "status"),
            Method = Text(get("method"))?.ToUpperInvariant(),
            Host = Text(get("host")),
            Slug = Text(get("slug")),
            Ip = Text(get("ip")),
            User = Text(get("user")),
        }, get, now);
}

/// <summary>Outcome of a command, as filtered.</summary>
public enum CommandOutcome
{
    /// <summary>The command finished successfully.</summary>
    Succeeded = 1,

    /// <summary>The command failed.</summary>
    Failed = 2,

    /// <summary>The command has not finished.</summary>
    Running = 3,
}

/// <summary>Filters of the command list (<c>name</c>, <c>outcome</c> and the common ones).</summary>
public sealed record CommandFilter : ListFilter
{
    /// <summary>Commands of exactly this name (<c>name</c>); null for every name.</summary>
    public string? Name { get; init; }

    /// <summary>Commands with this outcome (<c>outcome</c>); null for every outcome.</summary>
    public CommandOutcome? Outcome { get; init; }

    /// <summary>Reads the command filters by name.</summary>
    /// <param name="get">The values by name.</param>
    /// <param name="now">The current time (UTC), for <c>since</c>.</param>
    /// <returns>The filter.</returns>
    /// <exception cref="FilterException">When a value cannot be understood.</exception>
    public static CommandFilter Parse(FilterSource get, DateTime now) =>
        ParseCommon(new CommandFilter
        {
            Name = Text(get("name")),
            Outcome = EnumValue<CommandOutcome>(get("outcome"), "outcome"),
        }, get, now);
}
