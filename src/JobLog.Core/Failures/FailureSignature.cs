using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace JobLog.Failures;

/// <summary>
/// What makes two failures "the same": the exception type and the first stack frame of the application's own code
/// (frames of MassTransit, JobLog, <c>System.*</c> and <c>Microsoft.*</c> skipped). A wrapper
/// (<see cref="AggregateException"/>, <c>TargetInvocationException</c>, a MassTransit exception) with an inner exception
/// is grouped by its first inner one. Where the recording path has the exception, the signature is the exception's own
/// (its type and its stack traces, never its message, which may be the sender's text); when the error text would read
/// otherwise (a message holding lines that look like frames or inner exceptions, a message so long the frames were cut),
/// the text starts with the signature, <c>[failure group: Type at Frame]</c>. Otherwise, and for text written without
/// an exception (older rows, restored ones), it is read from the error text the ledger keeps
/// (<see cref="TaskRunLog.ErrorMessage"/>: <c>Exception.ToString()</c>, possibly after a prefix such as
/// <c>Faulted in Activity: </c> for Courier).
/// </summary>
/// <param name="ExceptionType">The exception's full type name; <c>(unknown)</c> when the text names none.</param>
/// <param name="Frame">The method of the first frame of the application's code (no arguments, file or line); null when none.</param>
public sealed partial record FailureSignature(string ExceptionType, string? Frame)
{
    /// <summary>The type name used when the error text names no exception.</summary>
    public const string UnknownType = "(unknown)";

    private static readonly string[] s_frameworkPrefixes = ["MassTransit.", "System.", "Microsoft.", "Npgsql.", "RabbitMQ.", "Polly."];

    /// <summary>
    /// The integrations' own namespaces and root-namespace types, named one by one (Core cannot see their assemblies;
    /// each integration's tests check that this list covers every type it has), so that an application's code in
    /// <c>JobLog.MassTransit.Tests</c> or <c>JobLog.AspNetCore.Sample</c> still counts as the application's.
    /// </summary>
    private static readonly string[] s_integrationPrefixes =
    [
        "JobLog.MassTransit.Internal.", "JobLog.MassTransit.Scheduling.",
        "JobLog.AspNetCore.Dashboard.", "JobLog.AspNetCore.Requests.",
        "JobLog.JobLogSchedulerOptions.", "JobLog.JobLogSchedulerOptionsValidator.",
        "JobLog.JobLogExemptAttribute.", "JobLog.HideRequestBodyAttribute.", "JobLog.JobLogSlugAttribute.",
        "JobLog.JobLogRequestOptions.", "JobLog.JobLogRequestOptionsValidator.",
    ];

    /// <summary>
    /// JobLog's own code: every namespace (or, in the root namespace, every type) of Core and of its integrations, so
    /// that an application's <c>JobLog.*</c>-named code (a test project, say) still counts as the application's.
    /// </summary>
    private static readonly Lazy<string[]> s_jobLogPrefixes = new(() =>
        typeof(FailureSignature).Assembly.GetTypes()
            .Where(t => t.Namespace?.StartsWith("JobLog", StringComparison.Ordinal) == true && !t.IsNested)
            .Select(t => t.Namespace == "JobLog" ? "JobLog." + t.Name.Split('`')[0] + "." : t.Namespace + ".")
            .Concat(s_integrationPrefixes)
            .Distinct(StringComparer.Ordinal)
            .ToArray());
    private static readonly string[] s_wrappers =
        ["System.AggregateException", "System.Reflection.TargetInvocationException"];

    /// <summary>Reads the signature of an error text.</summary>
    /// <param name="errorText">The text the ledger keeps (null or empty gives <see cref="UnknownType"/>).</param>
    /// <returns>The signature.</returns>
    public static FailureSignature Parse(string? errorText)
    {
        if (string.IsNullOrEmpty(errorText))
        {
            return new FailureSignature(UnknownType, null);
        }

        if (Stated(errorText) is { } stated)
        {
            return stated;
        }

        var outer = TypePattern().Match(errorText);
        var type = outer.Success ? outer.Groups["type"].Value : UnknownType;
        if (outer.Success && IsWrapper(type)
            && InnerPattern().Match(errorText, outer.Index + outer.Length) is { Success: true } inner)
        {
            type = inner.Groups["type"].Value;
        }

        return new FailureSignature(type, FirstFrame([errorText]));
    }

    /// <summary>
    /// The signature of an exception, from its type and its stack traces (never its message): the same signature
    /// <see cref="Parse"/> reads from its <c>ToString()</c> when the message holds nothing that reads as a frame.
    /// </summary>
    internal static FailureSignature Of(Exception exception)
    {
        if (exception.InnerException is not null || exception is AggregateException)
        {
            return From(exception.GetType().ToString(), exception.InnerException?.GetType().ToString(), Traces(exception, 0));
        }

        // One trace: the retries of a failure give the same cached trace text (ExceptionTexts), whose frames are searched once.
        var trace = Redaction.ExceptionTexts.TraceOf(exception);
        var type = exception.GetType();
        if (trace is not null && t_lastOf is { } last && ReferenceEquals(last.Trace, trace) && last.Type == type)
        {
            return last.Signature;
        }

        var signature = From(type.ToString(), null, [trace]);
        if (trace is not null)
        {
            t_lastOf = new OfMemo(type, trace, signature);
        }

        return signature;
    }

    [ThreadStatic]
    private static OfMemo? t_lastOf;

    [ThreadStatic]
    private static StatingMemo? t_lastStating;

    private sealed record OfMemo(Type Type, string Trace, FailureSignature Signature);

    private sealed record StatingMemo(string Text, FailureSignature Signature, bool Reads);

    /// <summary>
    /// The signature of an exception known by its parts (a fault's <c>ExceptionInfo</c>): its type, its first inner
    /// exception's type (null when the text shows none), and its stack traces in the order its text shows them.
    /// </summary>
    internal static FailureSignature From(string exceptionType, string? innerType, IEnumerable<string?> traces) =>
        new(IsWrapper(exceptionType) && innerType is not null ? innerType : exceptionType, FirstFrame(traces));

    /// <summary>
    /// <paramref name="errorText"/> as the ledger keeps it for a failure whose signature is <paramref name="signature"/>:
    /// the text itself when it reads as that signature (the usual case), else the text after a first line stating it.
    /// </summary>
    internal static string Stating(string errorText, FailureSignature signature)
    {
        // A failure's retries usually give the same text for the same signature: it is read once.
        var reads = t_lastStating is { } last && last.Signature == signature && string.Equals(last.Text, errorText, StringComparison.Ordinal)
            ? last.Reads
            : (t_lastStating = new StatingMemo(errorText, signature, Parse(errorText) == signature)).Reads;
        return reads ? errorText : StatedPrefix + signature + "]\n" + errorText;
    }

    internal const string StatedPrefix = "[failure group: ";

    /// <summary>
    /// An error text as the dashboard, the API, the CLI and alerts show it: without the first line <see cref="Stating"/>
    /// put before it, which is JobLog's grouping marker, not part of the exception's text (grouping reads the text kept).
    /// </summary>
    /// <param name="errorText">The text the ledger keeps.</param>
    /// <returns>The text without a stated line; the text itself otherwise.</returns>
    internal static string? Unstated(string? errorText)
    {
        if (errorText is null || Stated(errorText) is null)
        {
            return errorText;
        }

        var end = errorText.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? errorText : errorText[(end + 1)..];
    }

    /// <summary>The signature a text states on its first line (<see cref="Stating"/>), if it does.</summary>
    private static FailureSignature? Stated(string errorText)
    {
        if (!errorText.StartsWith(StatedPrefix, StringComparison.Ordinal))
        {
            return null;
        }

        var end = errorText.IndexOf('\n', StringComparison.Ordinal);
        var line = (end < 0 ? errorText : errorText[..end]).TrimEnd('\r');
        if (!line.EndsWith(']'))
        {
            return null;
        }

        var stated = line[StatedPrefix.Length..^1];
        var at = stated.IndexOf(" at ", StringComparison.Ordinal);
        return at < 0 ? new FailureSignature(stated, null) : new FailureSignature(stated[..at], stated[(at + 4)..]);
    }

    /// <summary>The stack traces of an exception in the order <c>ToString()</c> prints them: inner exceptions first, then its own, then an aggregate's others.</summary>
    private static IEnumerable<string?> Traces(Exception exception, int depth)
    {
        if (depth > 16)
        {
            yield break;
        }

        if (exception.InnerException is { } inner)
        {
            foreach (var trace in Traces(inner, depth + 1))
            {
                yield return trace;
            }
        }

        yield return Redaction.ExceptionTexts.TraceOf(exception);
        if (exception is AggregateException aggregate)
        {
            foreach (var trace in aggregate.InnerExceptions.SelectMany(e => Traces(e, depth + 1)))
            {
                yield return trace;
            }
        }
    }

    private static string? FirstFrame(IEnumerable<string?> texts)
    {
        foreach (var text in texts)
        {
            if (string.IsNullOrEmpty(text))
            {
                continue;
            }

            foreach (Match m in FramePattern().Matches(text))
            {
                var method = Normalize(m.Groups["method"].Value);
                if (IsApplicationsCode(method))
                {
                    return method;
                }
            }
        }

        return null;
    }

    /// <summary>Whether a frame's method (<c>Ns.Type.Method</c>) is the application's: neither a framework's nor JobLog's own.</summary>
    /// <param name="method">The method's full name.</param>
    /// <returns>True for the application's code.</returns>
    internal static bool IsApplicationsCode(string method) =>
        !s_frameworkPrefixes.Any(p => method.StartsWith(p, StringComparison.Ordinal))
        && !s_jobLogPrefixes.Value.Any(p => method.StartsWith(p, StringComparison.Ordinal));

    /// <summary>The signature as one line, e.g. <c>System.InvalidOperationException at Shop.Orders.Handle</c>.</summary>
    /// <returns>The text (also the group key of <see cref="FailureGrouping.Exception"/>).</returns>
    public override string ToString() => Frame is null ? ExceptionType : ExceptionType + " at " + Frame;

    private static bool IsWrapper(string type) =>
        s_wrappers.Contains(type, StringComparer.Ordinal) || type.StartsWith("MassTransit.", StringComparison.Ordinal);

    /// <summary><c>Ns.Type.&lt;Handle&gt;d__3.MoveNext</c> (an async state machine) becomes <c>Ns.Type.Handle</c>.</summary>
    private static string Normalize(string method)
    {
        var machine = StateMachinePattern().Match(method);
        return machine.Success ? method[..machine.Index] + "." + machine.Groups["name"].Value : method;
    }

    // A dotted type name (or a bare one ending in Exception) followed by ": " — the start of Exception.ToString().
    [GeneratedRegex(@"(?<![\w.`])(?<type>(?:[A-Za-z_][\w`]*\.)+[A-Za-z_][\w`+]*|[A-Za-z_]\w*Exception)(?=: |:\r?\n|\r?\n|$)", RegexOptions.CultureInvariant, 1000)]
    private static partial Regex TypePattern();

    [GeneratedRegex(@"(?:--->|\(Inner Exception #\d+\)) (?<type>(?:[A-Za-z_][\w`]*\.)+[A-Za-z_][\w`+]*|[A-Za-z_]\w*Exception)(?=: |:\r?\n|\r?\n|$)", RegexOptions.CultureInvariant, 1000)]
    private static partial Regex InnerPattern();

    [GeneratedRegex(@"^\s*at (?<method>[^\s(]+)\(", RegexOptions.Multiline | RegexOptions.CultureInvariant, 1000)]
    private static partial Regex FramePattern();

    [GeneratedRegex(@"\.<(?<name>[^>]+)>d__\d+\.MoveNext$", RegexOptions.CultureInvariant, 1000)]
    private static partial Regex StateMachinePattern();
}

/// <summary>How failures are grouped (<c>by</c>: <c>exception</c>, <c>type</c> or <c>queue</c>).</summary>
public enum FailureGrouping
{
    /// <summary>By exception type and the first frame of the application's code (<see cref="FailureSignature"/>). The default.</summary>
    Exception = 0,

    /// <summary>By message type (the task name).</summary>
    Type = 1,

    /// <summary>By the queue whose consumer failed.</summary>
    Queue = 2,
}

/// <summary>A failure group's key: how it groups and the value its failures share.</summary>
/// <param name="By">How it groups.</param>
/// <param name="Value">The shared value: the signature's text, the task name, or the queue.</param>
public sealed record FailureGroupKey(FailureGrouping By, string Value)
{
    /// <summary>
    /// A stable id (16 hex digits of the SHA-256 of the grouping and the value): the same failures give the same id on
    /// every page, API call, CLI run and process.
    /// </summary>
    public string Id => Hash(By, Value);

    internal static string Hash(FailureGrouping by, string value)
    {
        var bytes = SHA256.HashData(Encoding.UTF8.GetBytes(by.ToString().ToLowerInvariant() + "\n" + value));
        return Convert.ToHexStringLower(bytes.AsSpan(0, 8));
    }
}
