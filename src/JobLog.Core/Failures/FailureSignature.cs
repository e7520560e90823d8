using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace JobLog.Failures;

/// <summary>
/// What makes two failures "the same": the exception type and the first stack frame of the application's own code
/// (frames of MassTransit, JobLog, <c>System.*</c> and <c>Microsoft.*</c> skipped), read from the error text the
/// ledger keeps (<see cref="TaskRunLog.ErrorMessage"/>: <c>Exception.ToString()</c>, possibly after a prefix such as
/// <c>Faulted in Activity: </c> for Courier). A wrapper (<see cref="AggregateException"/>,
/// <c>TargetInvocationException</c>, a MassTransit exception) with an inner exception is grouped by its first inner one.
/// </summary>
/// <param name="ExceptionType">The exception's full type name; <c>(unknown)</c> when the text names none.</param>
/// <param name="Frame">The method of the first frame of the application's code (no arguments, file or line); null when none.</param>
public sealed partial record FailureSignature(string ExceptionType, string? Frame)
{
    /// <summary>The type name used when the error text names no exception.</summary>
    public const string UnknownType = "(unknown)";

    private static readonly string[] s_frameworkPrefixes = ["MassTransit.", "System.", "Microsoft.", "Npgsql.", "RabbitMQ.", "Polly."];

    /// <summary>
    /// JobLog's own code: its integrations' namespaces and every namespace (or, in the root namespace, every type) of
    /// Core, so that an application's <c>JobLog.*</c>-named code (a test project, say) still counts as the application's.
    /// </summary>
    private static readonly Lazy<string[]> s_jobLogPrefixes = new(() =>
        typeof(FailureSignature).Assembly.GetTypes()
            .Where(t => t.Namespace?.StartsWith("JobLog", StringComparison.Ordinal) == true && !t.IsNested)
            .Select(t => t.Namespace == "JobLog" ? "JobLog." + t.Name.Split('`')[0] + "." : t.Namespace + ".")
            .Concat(["JobLog.MassTransit.", "JobLog.AspNetCore."])
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

        var outer = TypePattern().Match(errorText);
        var type = outer.Success ? outer.Groups["type"].Value : UnknownType;
        if (outer.Success && IsWrapper(type)
            && InnerPattern().Match(errorText, outer.Index + outer.Length) is { Success: true } inner)
        {
            type = inner.Groups["type"].Value;
        }

        string? frame = null;
        foreach (Match m in FramePattern().Matches(errorText))
        {
            var method = Normalize(m.Groups["method"].Value);
            if (!s_frameworkPrefixes.Any(p => method.StartsWith(p, StringComparison.Ordinal))
                && !s_jobLogPrefixes.Value.Any(p => method.StartsWith(p, StringComparison.Ordinal)))
            {
                frame = method;
                break;
            }
        }

        return new FailureSignature(type, frame);
    }

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
