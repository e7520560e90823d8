using System.Security.Cryptography;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>The script, stylesheet and icon, embedded in the assembly (the dashboard works offline, without a CDN).</summary>
internal static class DashboardAssets
{
    private static readonly Dictionary<string, (byte[] Content, string ContentType)> s_assets = Load();

    /// <summary>A hash of every asset: URLs carry it, so browsers may cache assets for a year.</summary>
    public static string Version { get; } = ComputeVersion();

    public static bool TryGet(string name, out byte[] content, out string contentType)
    {
        if (s_assets.TryGetValue(name, out var asset))
        {
            (content, contentType) = asset;
            return true;
        }

        content = [];
        contentType = "";
        return false;
    }

    private static Dictionary<string, (byte[], string)> Load()
    {
        var assembly = typeof(DashboardAssets).Assembly;
        var assets = new Dictionary<string, (byte[], string)>(StringComparer.Ordinal);
        foreach (var (name, type) in new[]
        {
            ("joblog.js", "text/javascript; charset=utf-8"),
            ("joblog.css", "text/css; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
        })
        {
            using var stream = assembly.GetManifestResourceStream("JobLog.Dashboard." + name)
                ?? throw new InvalidOperationException($"The dashboard asset {name} is missing from {assembly.GetName().Name}.");
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            assets[name] = (buffer.ToArray(), type);
        }

        return assets;
    }

    private static string ComputeVersion()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (content, _) in s_assets.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Value))
        {
            hash.AppendData(content);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset())[..12];
    }
}
