using JobLog.Samples.RequestResponse;
using Microsoft.Extensions.Hosting;

using var host = RequestResponseSample.CreateHost(args);
await host.StartAsync();
foreach (var level in await RequestResponseSample.RunAsync(host.Services))
{
    Console.WriteLine($"{level.Sku}: {level.Count} in stock");
}

await Task.Delay(TimeSpan.FromSeconds(3));
await host.StopAsync();
Console.WriteLine("Done: open the ledger with `JobLog.Worker tasks` or the dashboard.");
