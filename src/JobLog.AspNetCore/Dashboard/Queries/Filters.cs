using System.Globalization;
using JobLog.Retention;

namespace JobLog.AspNetCore.Dashboard.Queries;

/// <summary>A filter value that cannot be understood; pages show it, the API answers 400, the CLI exits with 2.</summary>
internal sealed class FilterException(string message) : Exception(message);

/// <summary>
/// A keyset position: the (time, id) of the last row of a page. Rows are ordered newest first by (time, id), so the
/// next page is "strictly before this pair" and is read from the time index whatever the page number.
/// </summary>
internal readonly record struct Cursor(DateTime At, Guid Id)
{
    public override string ToString() => At.Ticks.ToString(CultureInfo.InvariantCulture) + "-" + Id.ToString("N");

    public static Cursor Parse(string text)
    {
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
internal sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);

/// <summary>Reads filter values by name from a query string or command-line options (the same names everywhere).</summary>
internal delegate string? FilterSource(string name);

/// <summary>Filters shared by every list: a time range, a text search, the page position and size.</summary>
internal abstract record ListFilter
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 500;

    /// <summary>The longest free-text search (<c>q</c>): a search is a LIKE over every row, so its cost is bounded.</summary>
    public const int MaxSearchLength = 200;

    public DateTime? From { get; init; }

    public DateTime? To { get; init; }

    public string? Search { get; init; }

    public Cursor? After { get; init; }

    public int Limit { get; init; } = DefaultLimit;

    /// <summary>The relative period the user chose (<c>since=1h</c>), kept to redraw the form.</summary>
    public string? Since { get; init; }

    protected static T ParseCommon<T>(T filter, FilterSource get, DateTime now)
        where T : ListFilter
    {
        DateTime? from = Time(get("from"), "from");
        var since = Text(get("since"));
        if (since is not null)
        {
            if (!DurationText.TryParse(since, out var period))
            {
                throw new FilterException($"'since' must look like 15m, 1h, 24h, 7d or 2w, not '{since}'.");
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

    protected static string? Text(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    /// <summary>One value, by name only: a number or a combination (<c>3</c>, <c>failed,expired</c> as flags) is refused.</summary>
    protected static TEnum? EnumValue<TEnum>(string? value, string name)
        where TEnum : struct, Enum
    {
        var text = Text(value);
        return text is null ? null : EnumName<TEnum>(text, name, text);
    }

    /// <summary>
    /// A comma-separated list of values by name (<c>failed,expired</c>), each parsed on its own, never combined as
    /// flags; numbers and unknown names are refused. Null when absent.
    /// </summary>
    protected static IReadOnlyList<TEnum>? EnumList<TEnum>(string? value, string name)
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

        throw new FilterException($"'{name}' must be one of {string.Join(", ", Enum.GetNames<TEnum>().Select(n => n.ToLowerInvariant()))}, not '{whole}'.");
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

        throw new FilterException($"'{name}' must be a date and time such as 2026-03-01T08:00 (UTC unless an offset is given), not '{text}'.");
    }
}

/// <summary>Filters of the task list.</summary>
internal sealed record TaskFilter : ListFilter
{
    /// <summary>Tasks in any of these states (<c>state=failed,expired</c>); null for every state.</summary>
    public IReadOnlyList<TaskState>? States { get; init; }

    public string? Name { get; init; }

    public string? Queue { get; init; }

    /// <summary>MassTransit's infrastructure messages: hidden unless <c>internal=true|all</c>.</summary>
    public InternalTasks Internal { get; init; }

    public static TaskFilter Parse(FilterSource get, DateTime now) =>
        ParseCommon(new TaskFilter
        {
            States = EnumList<TaskState>(get("state"), "state"),
            Name = Text(get("name")),
            Queue = Text(get("queue")),
            Internal = InternalTasksFilter.Parse(get("internal")),
        }, get, now);
}

/// <summary>Filters of the inbound and outbound request lists.</summary>
internal sealed record RequestFilter : ListFilter
{
    public RequestLogStatus? Status { get; init; }

    public string? Method { get; init; }

    public string? Host { get; init; }

    public string? Slug { get; init; }

    /// <summary>Inbound only: the client IP.</summary>
    public string? Ip { get; init; }

    /// <summary>Inbound only: the user id.</summary>
    public string? User { get; init; }

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
internal enum CommandOutcome
{
    Succeeded = 1,
    Failed = 2,
    Running = 3,
}

/// <summary>Filters of the command list.</summary>
internal sealed record CommandFilter : ListFilter
{
    public string? Name { get; init; }

    public CommandOutcome? Outcome { get; init; }

    public static CommandFilter Parse(FilterSource get, DateTime now) =>
        ParseCommon(new CommandFilter
        {
            Name = Text(get("name")),
            Outcome = EnumValue<CommandOutcome>(get("outcome"), "outcome"),
        }, get, now);
}
