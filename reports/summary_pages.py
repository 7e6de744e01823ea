"""(Pages of the reports app: filled in by the work on issue 15.)"""

urlpatterns: list = []
