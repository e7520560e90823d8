namespace JobLog.Worker.Cli;

/// <summary>A command line that cannot be understood; the CLI prints it with exit code 2.</summary>
internal sealed class CliUsageException(string message) : Exception(message)
{
    /// <summary>Runs a command; a usage error, a bad filter or an unreadable backup is printed and exits with 2.</summary>
    public static async Task<int> GuardAsync(Func<Task<int>> command)
    {
        try
        {
            return await command();
        }
        catch (Exception ex) when (ex is CliUsageException or JobLog.AspNetCore.Dashboard.Queries.FilterException or InvalidDataException)
        {
            await Console.Error.WriteLineAsync("error: " + TerminalWriter.Escape(ex.Message));
            return 2;
        }
    }
}

/// <summary>
/// A command's options: <c>--name value</c>, <c>--name=value</c> and flags. Options whose name holds a <c>:</c>
/// (<c>--ConnectionStrings:JobLog=...</c>) are settings, passed on to the configuration.
/// </summary>
internal sealed class CliOptions
{
    private readonly Dictionary<string, string> _values = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _flags = new(StringComparer.OrdinalIgnoreCase);

    public List<string> Positional { get; } = [];

    public List<string> Settings { get; } = [];

    public static CliOptions Parse(string[] args, IReadOnlyCollection<string> valued, IReadOnlyCollection<string> flags)
    {
        var options = new CliOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) && !(arg.StartsWith('-') && arg.Length == 2))
            {
                options.Positional.Add(arg);
                continue;
            }

            var name = arg.TrimStart('-');
            string? value = null;
            var equals = name.IndexOf('=', StringComparison.Ordinal);
            if (equals >= 0)
            {
                value = name[(equals + 1)..];
                name = name[..equals];
            }

            if (name.Contains(':', StringComparison.Ordinal))
            {
                options.Settings.Add(arg);
                if (value is null && i + 1 < args.Length)
                {
                    options.Settings.Add(args[++i]);
                }

                continue;
            }

            if (flags.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                if (value is not null)
                {
                    throw new CliUsageException($"--{name} takes no value.");
                }

                options._flags.Add(name);
            }
            else if (valued.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                if (value is null)
                {
                    if (i + 1 >= args.Length)
                    {
                        throw new CliUsageException($"--{name} needs a value.");
                    }

                    value = args[++i];
                }

                options._values[name] = value;
            }
            else
            {
                throw new CliUsageException($"unknown option '{arg}'.");
            }
        }

        return options;
    }

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public bool Has(string flag) => _flags.Contains(flag);
}

/// <summary>Columns padded to their widest cell.</summary>
internal static class TextTable
{
    public static void Write(TextWriter output, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => r[i].Length))).ToArray();
        output.WriteLine(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in all)
        {
            output.WriteLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }
    }

    /// <summary>One line, at most <paramref name="length"/> characters, control characters as visible escapes.</summary>
    public static string Cell(string? text, int length)
    {
        if (string.IsNullOrEmpty(text))
        {
            return "-";
        }

        var line = TerminalWriter.Escape(text.ReplaceLineEndings(" "));
        return line.Length <= length ? line : line[..(length - 1)] + "…";
    }
}
