using JobLog.Samples.Outbox;
using Microsoft.Extensions.Hosting;

using var host = OutboxSample.CreateHost(args);
await host.StartAsync();
await OutboxSample.RunAsync(host.Services);
await Task.Delay(TimeSpan.FromSeconds(3));
await host.StopAsync();
Console.WriteLine("Done: open the ledger with `JobLog.Worker tasks` or the dashboard.");
