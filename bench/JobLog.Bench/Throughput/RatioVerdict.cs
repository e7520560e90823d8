using System.Globalization;

namespace JobLog.Bench.Throughput;

/// <summary>
/// The on/off ratio of one path, judged so that noise cannot flatter it: the ratio of the medians beside the median of
/// the paired (same-round) ratios. A target is met only when both meet it, and never when the rounds disagree widely
/// (one slow off-round paired with a slow on-round can make the paired ratio look good while the medians do not).
/// </summary>
internal sealed record RatioVerdict(double RatioOfMedians, double MedianOfPairs, double PairMin, double PairMax, string Text, string? Disagreement)
{
    /// <summary>Paired ratios further apart than this, or a side whose rounds spread more than this around their median.</summary>
    public const double WideSpread = 0.15;

    public static RatioVerdict Of(IReadOnlyList<double> off, IReadOnlyList<double> on, double? target)
    {
        var pairs = off.Zip(on, (a, b) => b / a).ToList();
        var ofMedians = ThroughputBench.Median([.. on]) / ThroughputBench.Median([.. off]);
        var ofPairs = ThroughputBench.Median(pairs);
        var min = pairs.Count == 0 ? double.NaN : pairs.Min();
        var max = pairs.Count == 0 ? double.NaN : pairs.Max();

        var reasons = new List<string>();
        if (max - min > WideSpread)
        {
            reasons.Add(string.Create(CultureInfo.InvariantCulture, $"paired ratios spread {min:0.00}–{max:0.00}"));
        }

        foreach (var (side, values) in new[] { ("off", off), ("on", on) })
        {
            var median = ThroughputBench.Median([.. values]);
            if (values.Count > 1 && (values.Max() - values.Min()) / median > WideSpread)
            {
                reasons.Add(string.Create(CultureInfo.InvariantCulture, $"{side} rounds spread {(values.Max() - values.Min()) / median:P0} of their median"));
            }
        }

        if (Math.Abs(ofMedians - ofPairs) > 0.05)
        {
            reasons.Add(string.Create(CultureInfo.InvariantCulture, $"ratio of medians {ofMedians:0.00} vs median of pairs {ofPairs:0.00}"));
        }

        var disagreement = reasons.Count == 0 ? null : "rounds disagree: " + string.Join(", ", reasons);
        string text;
        if (target is not { } t)
        {
            text = "—";
        }
        else if (pairs.Count < 3)
        {
            text = string.Create(CultureInfo.InvariantCulture, $"≥ {t:0.00} not judged ({pairs.Count} rounds; 3 needed)");
        }
        else if (ofMedians >= t && ofPairs >= t)
        {
            text = disagreement is null
                ? string.Create(CultureInfo.InvariantCulture, $"≥ {t:0.00} met")
                : string.Create(CultureInfo.InvariantCulture, $"≥ {t:0.00} not judged (noisy: run again)");
        }
        else
        {
            text = string.Create(CultureInfo.InvariantCulture, $"≥ {t:0.00} missed by {t - Math.Min(ofMedians, ofPairs):0.00}");
        }

        return new RatioVerdict(ofMedians, ofPairs, min, max, text, disagreement);
    }
}
