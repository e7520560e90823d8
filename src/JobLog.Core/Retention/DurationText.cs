using System.Globalization;

namespace JobLog.Retention;

/// <summary>Durations as people type them on a command line or in a URL: <c>90s</c>, <c>15m</c>, <c>12h</c>, <c>30d</c>, <c>2w</c>.</summary>
internal static class DurationText
{
    /// <summary>The longest duration accepted: 100 years (36,500 days). Longer, infinite or NaN values do not parse.</summary>
    public const int MaxDays = 36_500;

    /// <summary>A positive number and a unit (s, m, h, d, w), at most <see cref="MaxDays"/>; false for anything else.</summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text) || text.Length < 2)
        {
            return false;
        }

        text = text.Trim();
        var unit = char.ToLowerInvariant(text[^1]);
        if (!double.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value <= 0)
        {
            return false;
        }

        double? days = unit switch
        {
            's' => value / 86_400,
            'm' => value / 1_440,
            'h' => value / 24,
            'd' => value,
            'w' => value * 7,
            _ => null,
        };

        // Checked before a TimeSpan is made: 99999999999999999999d would overflow it.
        if (days is not { } d || !double.IsFinite(d) || d > MaxDays)
        {
            return false;
        }

        duration = TimeSpan.FromDays(d);
        return true;
    }
}
