using JobLog.Samples.Courier;

var app = CourierSample.Build(args);
await app.StartAsync();
var (completed, faulted) = await CourierSample.RunScenarioAsync(app.Services, app.Lifetime.ApplicationStopping);
var dashboard = app.Urls.FirstOrDefault() + "/joblog";
Console.WriteLine($"""
    Two routing slips ran:
      completed: {dashboard}/tasks/{completed}
      faulted and compensated: {dashboard}/tasks/{faulted}
    All routing slips: {dashboard}/tasks?name=RoutingSlip   Courier's events: {dashboard}/tasks?internal=true
    Press Ctrl+C to stop.
    """);
await app.WaitForShutdownAsync();
