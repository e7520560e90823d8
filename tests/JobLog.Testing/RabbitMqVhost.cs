using System.Diagnostics;

namespace JobLog.Testing;

/// <summary>A throwaway RabbitMQ virtual host, so a killed run cannot pollute the next one.</summary>
public sealed class RabbitMqVhost : IAsyncDisposable
{
    private RabbitMqVhost(string name) => Name = name;

    public string Name { get; }

    public static string Host => Environment.GetEnvironmentVariable("JOBLOG_TEST_RABBITMQ_HOST") ?? "127.0.0.1";

    public static async Task<RabbitMqVhost> CreateAsync()
    {
        var name = "joblog-test-" + Guid.NewGuid().ToString("N")[..10];
        try
        {
            await RabbitMqCtlAsync("add_vhost", name);
            await RabbitMqCtlAsync("set_permissions", "-p", name, "guest", ".*", ".*", ".*");
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            Services.Missing("RabbitMQ", ex);
        }

        return new RabbitMqVhost(name);
    }

    /// <summary>Messages ready in a queue of this vhost, or -1 when the queue does not exist.</summary>
    public async Task<int> MessagesInQueueAsync(string queue)
    {
        var output = await RabbitMqCtlAsync("list_queues", "-q", "-p", Name, "name", "messages_ready");
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split('\t', StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && parts[0] == queue && int.TryParse(parts[1], out var count))
            {
                return count;
            }
        }

        return -1;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await RabbitMqCtlAsync("delete_vhost", Name);
        }
        catch (InvalidOperationException ex)
        {
            Debug.WriteLine(ex);
        }
    }

    public static async Task<string> RabbitMqCtlAsync(params string[] args)
    {
        var info = new ProcessStartInfo("rabbitmqctl")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("rabbitmqctl did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr}");
        }

        return await stdout;
    }
}
