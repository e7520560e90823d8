namespace JobLog.Redaction;

/// <summary>A command line masked argument by argument.</summary>
internal static class CommandArguments
{
    /// <summary>Short options taken as passwords whatever the tool (<c>mysql -p x</c>, <c>docker login -p x</c>, <c>sqlcmd -P x</c>).</summary>
    private static readonly string[] s_passwordFlags = ["-p", "-P"];

    public static string Mask(IReadOnlyList<string> args, SensitiveNames names, TextPatterns patterns, string replacement, int max)
    {
        var parts = new List<string>(args.Count);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            var option = arg.StartsWith('-') || arg.StartsWith('/');
            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            var colon = arg.IndexOf(':', StringComparison.Ordinal);
            if (IsAttachedPassword(arg))
            {
                // -pvalue, as mysql and sqlcmd take it.
                parts.Add(arg[..2] + replacement);
            }
            else if (equals > 0 && !arg.AsSpan(0, equals).Contains("://", StringComparison.Ordinal)
                && (colon < 0 || colon > equals || !option || !IsSensitiveOption(arg[..colon], names)))
            {
                // key=value, --key=value, /p:Key=value, --Section:Key=value.
                var key = arg[..equals];
                var value = arg[(equals + 1)..];
                parts.Add(Quote(key + "=" + (names.IsSensitive(KeyName(key)) ? replacement : patterns.MaskValue(value))));
            }
            else if (option && colon > 0 && IsSensitiveOption(arg[..colon], names))
            {
                // --secret:value, /password:value.
                parts.Add(Quote(arg[..(colon + 1)] + replacement));
            }
            else if (option && (IsSensitiveName(KeyName(arg), names) || s_passwordFlags.Contains(arg, StringComparer.Ordinal)))
            {
                // --token value (even when the value starts with '-'), -p value, --Section:Password value.
                parts.Add(Quote(arg));
                if (i + 1 < args.Count)
                {
                    parts.Add(replacement);
                    i++;
                }
            }
            else
            {
                parts.Add(Quote(patterns.MaskValue(arg)));
            }
        }

        return TextBounds.Truncate(string.Join(' ', parts), max);
    }

    /// <summary>
    /// <c>-pvalue</c> or <c>-Pvalue</c>: a password attached to its flag. Not <c>-p:Name=value</c> (MSBuild, masked by
    /// name) nor a short option that is a word (<c>-pthread</c>, <c>-print</c>: lower-case letters only).
    /// </summary>
    private static bool IsAttachedPassword(string arg) =>
        arg.Length > 2 && arg[0] == '-' && arg[1] is ('p' or 'P') && arg[2] is not ('-' or ':') && arg.AsSpan(2).ContainsAnyExceptInRange('a', 'z');

    private static bool IsSensitiveOption(string option, SensitiveNames names) =>
        option.Length > 0 && (option.StartsWith('-') || option.StartsWith('/')) && IsSensitiveName(option.TrimStart('-', '/'), names);

    private static bool IsSensitiveName(string name, SensitiveNames names) => name.Length > 0 && names.IsSensitive(name);

    // "--ConnectionStrings:Db" → "Db"; "/p:ApiKey" → "ApiKey": the last segment names the setting.
    private static string KeyName(string key)
    {
        var name = key.TrimStart('-', '/');
        var colon = name.LastIndexOf(':');
        return colon >= 0 && colon < name.Length - 1 ? name[(colon + 1)..] : name;
    }

    /// <summary>
    /// The arguments of a command line <see cref="Mask"/> joined (or a hand-written one): split at white space, a part
    /// in double quotes taken whole with <c>\"</c> read as a quote; a quote left open runs to the end.
    /// </summary>
    public static List<string> Split(string line)
    {
        var args = new List<string>();
        var i = 0;
        while (i < line.Length)
        {
            if (char.IsWhiteSpace(line[i]))
            {
                i++;
                continue;
            }

            var arg = new System.Text.StringBuilder();
            if (line[i] == '"')
            {
                for (i++; i < line.Length && line[i] != '"'; i++)
                {
                    if (line[i] == '\\' && i + 1 < line.Length && line[i + 1] == '"')
                    {
                        i++;
                    }

                    arg.Append(line[i]);
                }

                i++;
            }
            else
            {
                for (; i < line.Length && !char.IsWhiteSpace(line[i]); i++)
                {
                    arg.Append(line[i]);
                }
            }

            args.Add(arg.ToString());
        }

        return args;
    }

    private static string Quote(string arg) =>
        arg.Length == 0 || arg.Any(char.IsWhiteSpace) ? "\"" + arg.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"" : arg;
}
