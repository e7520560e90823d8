using System.Globalization;

namespace JobLog.Worker.Cli;

/// <summary>A command line that cannot be understood by a command itself; the CLI prints it and exits with 2.</summary>
internal sealed class CliUsageException(string message) : Exception(message)
{
    /// <summary>An argument as the error shows it back: at most 100 characters, then its length (as the filters' errors).</summary>
    public static string Shown(string? value) =>
        value is not { Length: > 100 } ? value ?? ""
        : string.Create(CultureInfo.InvariantCulture, $"{value[..(char.IsHighSurrogate(value[99]) ? 99 : 100)]}… ({value.Length:N0} characters)");
}

/// <summary>What every command's action needs: the console, the settings and the raw arguments (for the command's record).</summary>
internal sealed class CliContext(CliConsole console, IReadOnlyList<string> settings, IReadOnlyList<string> args, bool recordCommand = true)
{
    public CliConsole Console => console;

    public IReadOnlyList<string> Settings => settings;

    /// <summary>
    /// Runs <paramref name="body"/> with the ledger's services, recorded as the command <paramref name="name"/> (its
    /// arguments are the command line without the command's name; the ledger masks secrets in them) unless code, not
    /// a user, called the command.
    /// </summary>
    /// <param name="createsLedger">
    /// True for <c>migrate</c> and <c>demo</c>: a SQLite ledger file that is not there is created. Every other command
    /// says there is no ledger at the path (exit 1) instead of creating an empty one where a mistyped path points.
    /// </param>
    public async Task<int> WithLedgerAsync(string name, Func<LedgerSession, Task<int>> body, CancellationToken cancellationToken, bool createsLedger = false)
    {
        var missing = createsLedger ? null : LedgerSession.MissingLedger(settings);
        await using var session = LedgerSession.Open(settings, missing);
        if (missing is not null)
        {
            // No ledger to record the command in. A setting it cannot use (JobLog's options, validated when first read) and
            // then an argument it cannot use are still said first (exit 2), the ledger untouched: the body runs up to its
            // first use of the ledger, and that use ends it.
            _ = session.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<JobLogOptions>>().Value;
            try
            {
                return await GuardAsync(() => body(session));
            }
            catch (LedgerMissingException ex)
            {
                await console.ErrorAsync(ex.Message);
                return 1;
            }
        }

        if (!recordCommand)
        {
            return await GuardAsync(() => body(session));
        }

        return await session.RunLoggedAsync(name, ArgumentsOf(name), _ => GuardAsync(() => body(session)), cancellationToken);
    }

    /// <summary>A usage error, a filter it cannot read or an unreadable backup: printed, exit code 2 (and so recorded).</summary>
    public async Task<int> GuardAsync(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (JobLog.Querying.FilterException ex)
        {
            await console.ErrorAsync(InOptionWords(ex.Message));
            return 2;
        }
        catch (Exception ex) when (ex is CliUsageException or InvalidDataException)
        {
            await console.ErrorAsync(ex.Message);
            return 2;
        }
    }

    /// <summary>
    /// A filter's error, which names the API's parameter (<c>'state' must be …</c>), in the command line's words: the
    /// option (<c>--state must be …</c>; the API's <c>q</c> is <c>--search</c>).
    /// </summary>
    internal static string InOptionWords(string message) =>
        message.StartsWith('\'') && message.IndexOf('\'', 1) is > 1 and var end
            ? "--" + (message[1..end] is "q" ? "search" : message[1..end]) + message[(end + 1)..]
            : message;

    private List<string> ArgumentsOf(string name)
    {
        var list = args.ToList();
        var index = list.FindIndex(a => string.Equals(a, name, StringComparison.OrdinalIgnoreCase));
        if (index >= 0)
        {
            list.RemoveAt(index);
        }

        return list;
    }
}

/// <summary>
/// Settings on the command line: options whose name holds a <c>:</c> (<c>--ConnectionStrings:JobLog=...</c>,
/// <c>--JobLog:Database postgres</c>) go to the configuration, not to a command.
/// </summary>
internal static class CliSettings
{
    public static (string[] Arguments, string[] Settings) Split(IReadOnlyList<string> args)
    {
        var rest = new List<string>();
        var settings = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            var name = arg.StartsWith('-') ? arg.TrimStart('-') : null;
            var equals = name?.IndexOf('=', StringComparison.Ordinal) ?? -1;
            var key = equals >= 0 ? name![..equals] : name;
            if (key is null || !key.Contains(':', StringComparison.Ordinal))
            {
                rest.Add(arg);
                continue;
            }

            settings.Add(arg);
            if (equals < 0 && i + 1 < args.Count)
            {
                settings.Add(args[++i]);
            }
        }

        return ([.. rest], [.. settings]);
    }
}
