using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace JobLog.Redaction;

/// <summary>
/// Which names are sensitive: compared ignoring case and the separators <c>-</c>, <c>_</c>, <c>.</c> and space, with
/// <c>*</c> as any run of characters. Also gives the names as a regular expression and as search needles for free text.
/// </summary>
internal sealed class SensitiveNames
{
    private readonly string[] _exact;
    private readonly string[][] _wildcards;
    private readonly ConcurrentDictionary<string, bool> _cache = new(StringComparer.Ordinal);

    private static readonly char[] s_nameParts = ['[', ']', '.'];

    public SensitiveNames(IEnumerable<string> names)
    {
        var list = names.Where(n => !string.IsNullOrWhiteSpace(n)).ToArray();
        var normalized = list.Select(Normalize).ToArray();
        _exact = normalized.Where(n => !n.Contains('*', StringComparison.Ordinal)).ToArray();
        _wildcards = normalized.Where(n => n.Contains('*', StringComparison.Ordinal)).Select(n => n.Split('*')).ToArray();
        Alternatives = list.Length == 0 ? "(?!)" : AlternativesOf(list);
        Needles = SearchValues.Create(NeedlesOf(list), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The names as a regex alternation over raw text (a separator is optional where the name has one).</summary>
    public string Alternatives { get; }

    /// <summary>Literal parts of the names: a text containing none of them holds no sensitive name.</summary>
    public SearchValues<string> Needles { get; }

    public bool IsSensitive(string name)
    {
        // The lookup apart from the closures of the first call: a name seen before allocates nothing.
        return _cache.TryGetValue(name, out var cached) ? cached : Resolve(name);
    }

    private bool Resolve(string name)
    {
        var n = Normalize(name);
        var sensitive = _exact.Contains(n, StringComparer.Ordinal) || _wildcards.Any(parts => MatchesWildcard(n, parts))
            // A nested name (card[pin], Users[0].Pin: forms, queries, model binding) is also read part by part.
            || (name.AsSpan().IndexOfAny('[', ']') >= 0
                && name.Split(s_nameParts, StringSplitOptions.RemoveEmptyEntries).Any(part => part.Length < name.Length && IsSensitive(part)));
        if (_cache.Count < 10_000)
        {
            _cache[name] = sensitive;
        }

        return sensitive;
    }

    internal static string Normalize(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            if (!IsSeparator(c))
            {
                sb.Append(char.ToLowerInvariant(c));
            }
        }

        return sb.ToString();
    }

    private static bool IsSeparator(char c) => c is '-' or '_' or '.' or ' ';

    /// <summary>
    /// "X-Amz-Signature" matches <c>X-Amz-Signature</c>, <c>x_amz_signature</c>, <c>XAmzSignature</c>; "password"
    /// matches <c>password</c> in any case. '*' is any run of name characters.
    /// </summary>
    private static string NameRegex(string name)
    {
        var sb = new StringBuilder();
        var pendingSeparator = false;
        foreach (var c in name)
        {
            if (IsSeparator(c))
            {
                pendingSeparator = true;
                continue;
            }

            if (c == '*')
            {
                sb.Append(@"[^&=\s""'<>;:,/\\()\[\]{}]*");
                pendingSeparator = false;
                continue;
            }

            if (pendingSeparator && sb.Length > 0)
            {
                sb.Append(@"[-_. ]?");
            }

            pendingSeparator = false;
            sb.Append(Regex.Escape(c.ToString()));
        }

        return sb.ToString();
    }

    /// <summary>
    /// The exact names, then every <c>*core*</c> name merged into one branch (one lazy scan of the word that tries all
    /// cores at each step, instead of one greedy scan and backtrack per name), then other wildcard shapes.
    /// </summary>
    private static string AlternativesOf(string[] names)
    {
        const string nameChar = @"[^&=\s""'<>;:,/\\()\[\]{}]";
        var contains = names.Where(n => n.Length > 2 && n[0] == '*' && n[^1] == '*' && !n[1..^1].Contains('*', StringComparison.Ordinal)).ToList();
        var branches = names.Except(contains).Select(NameRegex).ToList();
        if (contains.Count > 0)
        {
            branches.Add($"{nameChar}*?(?:{string.Join('|', contains.Select(n => NameRegex(n[1..^1])))}){nameChar}*");
        }

        return string.Join('|', branches);
    }

    /// <summary>Each name's longest literal run (at least the whole name when it has no separator or wildcard).</summary>
    private static string[] NeedlesOf(IEnumerable<string> names) => names
        .Select(n => n.Split(['*', '-', '_', '.', ' '], StringSplitOptions.RemoveEmptyEntries).OrderByDescending(p => p.Length).FirstOrDefault())
        .Where(p => !string.IsNullOrEmpty(p))
        .Select(p => p!)
        .Distinct(StringComparer.OrdinalIgnoreCase)
        .ToArray();

    private static bool MatchesWildcard(string name, string[] parts)
    {
        var position = 0;
        for (var i = 0; i < parts.Length; i++)
        {
            var part = parts[i];
            if (part.Length == 0)
            {
                continue;
            }

            if (i == 0)
            {
                if (!name.StartsWith(part, StringComparison.Ordinal))
                {
                    return false;
                }

                position = part.Length;
                continue;
            }

            var found = name.IndexOf(part, position, StringComparison.Ordinal);
            if (found < 0)
            {
                return false;
            }

            position = found + part.Length;
        }

        var last = parts[^1];
        return last.Length == 0 || name.EndsWith(last, StringComparison.Ordinal);
    }
}
