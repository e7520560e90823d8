using System.Diagnostics;
using System.Net;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// A network namespace joined to this one by a veth pair, so that a client in it reaches this machine from a real
/// non-loopback address: <see cref="HostAddress"/> here, <see cref="ClientAddress"/> there. Needs root; removed on dispose.
/// </summary>
internal sealed class VethNamespace : IDisposable
{
    private readonly string _hostLink;

    private VethNamespace(string name, string hostLink, IPAddress hostAddress, IPAddress clientAddress)
    {
        Name = name;
        _hostLink = hostLink;
        HostAddress = hostAddress;
        ClientAddress = clientAddress;
    }

    public string Name { get; }

    public IPAddress HostAddress { get; }

    public IPAddress ClientAddress { get; }

    /// <summary>
    /// Creates the namespace. Not root: the test is ignored with the reason. Root, and the kernel refuses: under CI the
    /// test fails (it must run there), elsewhere it is ignored with the reason.
    /// </summary>
    public static VethNamespace Create()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Assert.Ignore("Creating a network namespace with a veth pair needs root; run the tests as root (CI does).");
        }

        var id = Guid.NewGuid().ToString("N")[..8];
        var subnet = Random.Shared.Next(256);
        var quad = Random.Shared.Next(64) * 4;
        var host = IPAddress.Parse($"10.213.{subnet}.{quad + 1}");
        var client = IPAddress.Parse($"10.213.{subnet}.{quad + 2}");
        var network = new VethNamespace("joblog-" + id, "jlh" + id, host, client);
        var peer = "jln" + id;
        try
        {
            Ip($"netns add {network.Name}");
            Ip($"link add {network._hostLink} type veth peer name {peer}");
            Ip($"link set {peer} netns {network.Name}");
            Ip($"addr add {host}/30 dev {network._hostLink}");
            Ip($"link set {network._hostLink} up");
            Ip($"netns exec {network.Name} ip addr add {client}/30 dev {peer}");
            Ip($"netns exec {network.Name} ip link set {peer} up");
            Ip($"netns exec {network.Name} ip link set lo up");
        }
        catch (InvalidOperationException ex)
        {
            network.Dispose();
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                Assert.Fail("CI runs as root and must test the dashboard from a network namespace: " + ex.Message);
            }

            Assert.Ignore("No network namespace: " + ex.Message);
        }

        return network;
    }

    /// <summary>Runs curl inside the namespace; returns its standard output.</summary>
    public async Task<string> CurlAsync(params string[] arguments)
    {
        var (code, output, error) = await RunAsync("ip", ["netns", "exec", Name, "curl", "--silent", "--show-error", "--max-time", "20", .. arguments]);
        if (code != 0)
        {
            throw new InvalidOperationException($"curl {string.Join(' ', arguments)} failed ({code}): {error}");
        }

        return output;
    }

    /// <summary>The status code of a GET from inside the namespace, with extra <c>-H</c> headers.</summary>
    public async Task<int> StatusAsync(string url, params string[] headers)
    {
        var arguments = new List<string> { "--output", "/dev/null", "--write-out", "%{http_code}" };
        foreach (var header in headers)
        {
            arguments.Add("--header");
            arguments.Add(header);
        }

        arguments.Add(url);
        return int.Parse(await CurlAsync([.. arguments]), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        // Deleting one end deletes the pair; the namespace goes last. Both are attempted whatever failed before.
        _ = RunAsync("ip", ["link", "del", _hostLink]).GetAwaiter().GetResult();
        _ = RunAsync("ip", ["netns", "del", Name]).GetAwaiter().GetResult();
    }

    private static void Ip(string arguments)
    {
        var (code, _, error) = RunAsync("ip", arguments.Split(' ')).GetAwaiter().GetResult();
        if (code != 0)
        {
            throw new InvalidOperationException($"ip {arguments} failed ({code}): {error.Trim()}");
        }
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, await output, await error);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, "", ex.Message);
        }
    }
}
